"""The Celery broker used when no server is configured: kombu's SQLAlchemy transport on SQLite.

kombu polls the database for new messages once a second by default, which would add up
to a second to every round trip. The interval cannot go in the transport options,
because kombu hands those to ``create_engine``, which rejects unknown arguments; a
subclass sets it instead.
"""

from kombu.transport import sqlalchemy

TRANSPORT_PATH = "shared.embedded_broker:Transport"


class Transport(sqlalchemy.Transport):
    polling_interval = 0.05
