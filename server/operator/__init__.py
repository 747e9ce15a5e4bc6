"""What an operator sees: the credential that lets them in (`auth`), and the views built on it."""
