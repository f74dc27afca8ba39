"""Session settings: the Delta jars Ivy resolved once are reused by later local sessions, and
their JVM starts from the class archive built for them."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import suite_config
from distne import classarchive, session
from distne.config import load_config
from distne.session import DELTA_PACKAGE, session_settings


@pytest.fixture()
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _write_classpath(jars: list[Path]) -> None:
    path = session._classpath_file()
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"file://{j}\n" for j in jars))


def test_session_remembers_the_jars_ivy_resolved(spark, spark_tmp):
    """The suite's local session either resolved its packages (Delta, and GraphFrames where
    setup installed it) and left the list of their jars, or started from that list: either
    way the list is the session's classpath and names the Delta connector's jar."""
    listed = session._cached_classpath(session.jvm_packages(suite_config(spark_tmp).spark))
    assert listed is not None
    assert listed == spark.sparkContext.getConf().get("spark.jars")
    assert any(Path(j).name.startswith("io.delta_delta-spark_") for j in listed.split(","))


def test_first_local_session_resolves_and_remembers(cache_home):
    settings, remember = session_settings(load_config(None, []), "local[2]")
    assert settings["spark.jars.packages"] == DELTA_PACKAGE
    assert "spark.jars" not in settings
    assert remember


def test_later_local_session_uses_the_remembered_jars(cache_home, tmp_path):
    jars = [tmp_path / "a.jar", tmp_path / "b.jar"]
    for j in jars:
        j.write_bytes(b"PK")
    _write_classpath(jars)
    settings, remember = session_settings(load_config(None, []), "local[*]")
    assert settings["spark.jars"] == ",".join(f"file://{j}" for j in jars)
    assert "spark.jars.packages" not in settings
    assert not remember


def test_a_missing_jar_sends_the_session_back_to_ivy(cache_home, tmp_path):
    present = tmp_path / "a.jar"
    present.write_bytes(b"PK")
    _write_classpath([present, tmp_path / "gone.jar"])
    settings, remember = session_settings(load_config(None, []), "local[*]")
    assert settings["spark.jars.packages"] == DELTA_PACKAGE
    assert remember


@pytest.mark.parametrize(
    ("master", "overrides"),
    [
        (None, []),  # spark-submit: the cluster's master, the driver's files are its own
        ("yarn", []),
        ("local[2]", ["spark.conf.spark.jars.packages=org.example:x:1.0"]),
        ("local[2]", ["spark.conf.spark.jars=/opt/my.jar"]),
    ],
)
def test_cache_is_not_used_off_local_or_with_jars_of_the_users(
    cache_home, tmp_path, master, overrides
):
    jar = tmp_path / "a.jar"
    jar.write_bytes(b"PK")
    _write_classpath([jar])
    settings, remember = session_settings(load_config(None, overrides), master)
    assert settings.get("spark.jars") != f"file://{jar}"
    assert not remember


def test_no_delta_jars_means_no_packages(cache_home):
    settings, remember = session_settings(load_config(None, ["spark.delta_jars=false"]), "local")
    assert "spark.jars.packages" not in settings and "spark.jars" not in settings
    assert not remember


def test_graphframes_joins_the_packages_and_has_a_cache_of_its_own(cache_home, tmp_path):
    """With spark.graphframes, the session asks for GraphFrames' coordinates beside Delta's,
    and a classpath remembered for Delta alone does not stand in for both."""
    jar = tmp_path / "a.jar"
    jar.write_bytes(b"PK")
    _write_classpath([jar])  # remembered for the Delta package alone
    settings, remember = session_settings(load_config(None, ["spark.graphframes=true"]), "local[2]")
    assert settings["spark.jars.packages"] == f"{DELTA_PACKAGE},{session.GRAPHFRAMES_PACKAGE}"
    assert remember
    settings, _ = session_settings(load_config(None, []), "local[2]")
    assert settings["spark.jars"] == f"file://{jar}"


def _fake_archive(jars: str, size: int, named: int | None = None) -> Path:
    """A file where an archive for ``jars`` goes, ``size`` bytes, its name saying ``named``."""
    stem = classarchive.archive_stem(jars)
    assert stem is not None
    path = classarchive.cache_dir() / f"{stem}-{size if named is None else named}.jsa"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    return path


def test_a_local_session_starts_from_a_whole_class_archive_and_never_from_a_cut_one(
    cache_home, tmp_path
):
    jar = tmp_path / "a.jar"
    jar.write_bytes(b"PK")
    _write_classpath([jar])
    overrides = ["spark.conf.spark.driver.extraJavaOptions=-XX:+UseParallelGC"]
    settings, _ = session_settings(load_config(None, overrides), "local[2]")
    assert settings["spark.driver.extraJavaOptions"] == "-XX:+UseParallelGC"  # none built
    archive = _fake_archive(f"file://{jar}", 64)
    settings, _ = session_settings(load_config(None, overrides), "local[2]")
    assert settings["spark.driver.extraJavaOptions"].split() == [
        "-XX:+UseParallelGC",
        f"-XX:SharedArchiveFile={archive}",
        *classarchive.QUIET.split(),
    ]
    for master, more in [("yarn", []), ("local[2]", ["spark.class_archive=false"])]:
        settings, _ = session_settings(load_config(None, overrides + more), master)
        assert "SharedArchiveFile" not in settings.get("spark.driver.extraJavaOptions", "")
    # The JVM maps the file whole: one shorter than it was built (a copy cut short, a full
    # disk) would crash it, so it is not used.
    archive.unlink()
    _fake_archive(f"file://{jar}", 63, named=64)
    settings, _ = session_settings(load_config(None, overrides), "local[2]")
    assert settings["spark.driver.extraJavaOptions"] == "-XX:+UseParallelGC"


def test_the_class_archive_is_built_checked_and_kept_under_its_size(cache_home):
    """A small run's JVM writes the archive, a second run starts from it, and the file is
    kept where local sessions with the same Java and jars find it."""
    built = classarchive.build()
    assert built is not None and built.parent == cache_home / "distne"
    assert int(built.stem.rsplit("-", 1)[1]) == built.stat().st_size > 10**6
    assert not list(built.parent.glob("*.tmp"))
    jars = session._cached_classpath()
    assert jars is not None and classarchive.find_archive(jars) == built
    # The archive of a .venv that is gone goes at the next build; this one's is replaced.
    gone = built.parent / "classes-0123456789abcdef"
    gone.with_suffix(".home").write_text(str(cache_home / "deleted-venv") + "\n")
    (built.parent / f"{gone.name}-5.jsa").write_bytes(b"12345")
    classarchive._prune(built.parent, built.stem.rsplit("-", 1)[0])
    assert not list(built.parent.glob("*.jsa")) and not list(built.parent.glob("*.home"))
