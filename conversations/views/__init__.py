"""Views, split by concern: the chat pages, attachments."""
