"""The product works offline: the guard in conftest blocks every non-loopback connection."""

import socket

import pytest

from conftest import NetworkBlocked


def test_non_loopback_connections_are_blocked():
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("93.184.216.34", 443), timeout=1)
    with socket.socket() as s, pytest.raises(NetworkBlocked):
        s.connect_ex(("10.0.0.1", 80))


def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=1):
            pass


def test_indexing_and_search_run_with_the_network_blocked(e5_article):
    # e5_article was built (model load, Chroma, jieba) under the same guard; a search works too.
    assert e5_article.search("阶跃星辰", k=1)
