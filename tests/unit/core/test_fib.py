from tunrouter.core.fib import Fib, Route


def ip(a):
    return bytes(int(x) for x in a.split("."))


def net(a):
    return int.from_bytes(ip(a), "big")


def test_longest_prefix_wins_and_default_catches_the_rest():
    fib = Fib()
    fib.add(Route(0, 0, 9, ip("10.0.0.254")))
    fib.add(Route(net("10.0.0.0"), 8, 1, None, connected=True))
    fib.add(Route(net("10.1.0.0"), 16, 2, ip("10.0.0.1")))
    fib.add(Route(net("10.1.2.0"), 24, 3, None, connected=True))
    assert fib.lookup(ip("10.1.2.3")).port == 3
    assert fib.lookup(ip("10.1.3.3")).port == 2
    assert fib.lookup(ip("10.9.9.9")).port == 1
    assert fib.lookup(ip("192.0.2.1")).port == 9


def test_no_route_without_default():
    fib = Fib()
    fib.add(Route(net("10.0.0.0"), 8, 1, None, connected=True))
    assert fib.lookup(ip("11.0.0.1")) is None
