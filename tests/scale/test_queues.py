"""A run's queue removed from the real RabbitMQ with its exchange and the messages still in it,
as the tests and the benchmark do when they are done with one."""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange, Queue

from cspgraph.distributed.queues import consumers, delete_queue
from tests.scale.services import unique


def test_deleting_a_queue_removes_it_its_exchange_and_its_messages(broker: str) -> None:
    name = unique("cspgraph-test")
    exchange = Exchange(name, type="direct")
    # Publisher confirms: the publish returns once the broker has the message in the queue.
    with Connection(broker, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        producer = connection.Producer(channel)
        producer.publish(
            {"left": "behind"},
            exchange=exchange,
            routing_key=name,
            declare=[Queue(name, exchange, routing_key=name)],
        )
        assert channel.queue_declare(name, passive=True).message_count == 1
    delete_queue(broker, name)
    assert consumers(broker, name) == 0
    with Connection(broker) as connection:
        for declare in (
            lambda channel: channel.queue_declare(name, passive=True),
            lambda channel: channel.exchange_declare(name, "direct", passive=True),
        ):
            with pytest.raises(Exception, match="NOT_FOUND"):
                declare(connection.channel())
    delete_queue(broker, name)  # deleting what is gone is no error
