"""The Slack bot: listeners and replies (`bot`), Block Kit rendering (`blocks`) and the HTTP
events endpoint (`http`)."""
