"""Measuring answers: eval suites (`evaluate`), the CI quality gate (`gate`), and choosing the
refusal and verification cut-offs from curves over calibration data (`calibration` builds the sets,
`collect` drafts answers once, `tune` sweeps the cut-offs over them).
Nothing here runs while answering; the pipeline modules never import it.
"""
