from pathlib import Path

import pytest

from shoal.core import nodeset
from shoal.core.inventory import Address, Inventory, parse_address
from shoal.errors import ConfigError, NodeSetError

INV = Inventory.from_dict(
    {
        "defaults": {"port": 2000},
        "nodes": {"cn1": "10.0.0.1", "cn2": "10.0.0.2:2222", "cn[3-4]": {"port": 3000}},
        "groups": {"compute": "cn[1-8]", "gpu": ["cn7", "cn8"]},
    }
)


def test_ranges_padding_and_operators() -> None:
    assert nodeset.select(["cn[0-3,5-9,12-13]"]) == [
        "cn0",
        "cn1",
        "cn2",
        "cn3",
        "cn5",
        "cn6",
        "cn7",
        "cn8",
        "cn9",
        "cn12",
        "cn13",
    ]
    assert nodeset.select(["n[01-03]"]) == ["n01", "n02", "n03"]
    assert nodeset.select(["r[1-2]n[1-2]"]) == ["r1n1", "r1n2", "r2n1", "r2n2"]
    assert nodeset.select(["cn[1-5]!cn[2-3]"]) == ["cn1", "cn4", "cn5"]


def test_groups_and_exclusion() -> None:
    assert nodeset.select(["@compute"], ["cn[2-6]"], INV) == ["cn1", "cn7", "cn8"]
    assert nodeset.select(["@gpu"], None, INV) == ["cn7", "cn8"]
    assert nodeset.select(["@all"], None, INV) == ["cn1", "cn2", "cn3", "cn4"]


@pytest.mark.parametrize("bad", ["cn[1-", "cn[3-1]", "", "   ", "cn[a-b]"])
def test_malformed_node_sets_raise(bad: str) -> None:
    with pytest.raises(NodeSetError):
        nodeset.select([bad])


def test_unknown_group_raises() -> None:
    with pytest.raises(NodeSetError, match="unknown group @nope"):
        nodeset.select(["cn1,@nope"], None, INV)


def test_empty_after_exclusion_raises() -> None:
    with pytest.raises(NodeSetError, match="empty"):
        nodeset.select(["cn[1-2]"], ["cn[1-2]"])


def test_fold() -> None:
    assert nodeset.fold(["cn3", "cn1", "cn2", "cn9"]) == "cn[1-3,9]"


def test_addresses() -> None:
    assert INV.address("cn1") == Address("10.0.0.1", 2000)
    assert INV.address("cn2") == Address("10.0.0.2", 2222)
    assert INV.address("cn3") == Address("cn3", 3000)
    assert str(INV.address("other")) == "other:2000"
    assert Inventory().address("x") == Address("x", 1995)
    assert parse_address("[::1]:7", 1) == Address("::1", 7)
    assert str(Address("::1", 7)) == "[::1]:7"


@pytest.mark.parametrize(
    "text",
    [
        "[nodes]\ncn1 = 'h:99999'\n",
        "[nodes]\ncn1 = 5\n",
        "[nodes]\n'cn[1-' = 'h'\n",
        "[groups]\ng = 3\n",
        "[bogus]\n",
        "[nodes\n",
    ],
)
def test_bad_inventory_files(tmp_path: Path, text: str) -> None:
    p = tmp_path / "inv.toml"
    p.write_text(text)
    with pytest.raises(ConfigError):
        Inventory.load(p)


def test_missing_inventory_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Inventory.load(tmp_path / "nope.toml")
