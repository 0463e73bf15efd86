"""The Gradio chat page: the layout and event handlers (`ui`) and the HTML it shows (`render`)."""
