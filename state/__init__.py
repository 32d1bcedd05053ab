"""State: config, the key/model/settings registry, atomic JSON persistence, the usage store.

Nothing here imports aiohttp or the `api`/`web` packages; the app wires these objects up in
`api.core.resources`, and the registry tells others of changes through its listeners.
"""
