"""Code that runs on both sides: in the page under Pyodide and in the server.

Imports only the standard library and marshmallow.
"""
