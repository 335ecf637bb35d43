"""Locust user classes (citizens, officers) and the locustfile a plan runs.

Import `locust` before anything that opens sockets: it patches the standard
library with gevent.
"""
