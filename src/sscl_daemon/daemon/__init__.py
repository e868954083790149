"""The daemon process: wiring, supervision, signals and the event pipeline.

``app`` builds every part from the settings and runs them in one task
group; ``pipeline`` carries events through the tracker into group commits;
``supervise`` restarts crashed tasks with backoff; ``signals`` turns SIGHUP,
SIGTERM and SIGINT into reload and drain requests.
"""
