"""Where images come from: a local folder (``folder``) or a blob container (``blob``)."""
