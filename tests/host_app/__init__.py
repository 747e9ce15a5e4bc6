"""A host app of lsmigrate's tests: an app of its own (a todo list) that mounts lsmigrate.

stores.py / stores.toml / stores.json   one catalog three ways: todos (Zustand `todo-app`,
                                        into the host's `todos` table) and notes (a bare
                                        array under `notes`, into lsmigrate's generic table)
app.py                                  the Flask app: its own db, model, user loader (a
                                        session cookie), 404 page, routes and JSON provider
"""
