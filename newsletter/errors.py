class NewsletterError(Exception):
    """The base of every error Advances raises on purpose. User-facing wording lives
    in templates, not in these messages."""
