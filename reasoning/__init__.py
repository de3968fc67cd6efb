"""The reasoning core: plans, their execution, experts and the events a run emits.

It never sees Postgres or HTTP: everything it does is reported as events into an `EventSink`.
"""
