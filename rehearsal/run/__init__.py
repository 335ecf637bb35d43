"""The run room: starting the reference systems and Locust (one process, local workers or remote ones),
the targets and their allowed list, the cutover's and the migration's operator steps."""
