"""Stand-ins for the CRMs' HTTP APIs, one aiohttp sub-application per CRM.

Each module has ``create_app(state) -> web.Application`` and a state class holding what the
"CRM" stored, so the writers can be tested and benchmarked end to end over loopback and the
demo can show the logs. ``common.py`` holds what they share (request journal, faults).
Mount one under a prefix with ``root.add_subapp("/pipedrive", pipedrive.create_app(state))``.
"""
