"""Measuring answers: eval suites (`evaluate`), the CI quality gate (`gate`), and choosing the
refusal and verification cut-offs from curves over calibration data (`tune`, `calibration`).
Nothing here runs while answering; the pipeline modules never import it.
"""
