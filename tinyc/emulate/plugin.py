"""Build tinyc's QEMU instruction-count plugin for the installed QEMU.

The plugin source (``tinyc/runtime/qemu_plugin/tinyc_insn_count.c``) is ours; the header it needs,
``qemu-plugin.h``, is GPL and is not shipped: a QEMU plugin must be built against the header of the
QEMU that loads it, and no Debian binary package carries it. So at setup we take it from Debian's
*source* package of the installed QEMU version (``apt-get source --download-only`` with a private
sources list and private apt state, nothing installed system-wide), keep only the header, and
build the plugin into ``<cache>/qemu-plugin/<qemu version>/`` (cache: ``$TINYC_CACHE_DIR`` or
``$XDG_CACHE_HOME/tinyc`` or ``~/.cache/tinyc``). ``$TINYC_QEMU_PLUGIN_H`` may name a header to use
instead (other distributions, QEMU built from source).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tinyc.errors import TinycError

QEMU = "qemu-system-arm"
_HEADER = "qemu-plugin.h"
_HEADER_IN_SOURCE = "include/qemu/qemu-plugin.h"
_PLUGIN_NAME = "libtinyc_insn_count"
_SYSTEM_HEADERS = ("/usr/include/qemu/qemu-plugin.h", "/usr/include/qemu-plugin.h")


class PluginSetupError(TinycError):
    """The instruction-count plugin cannot be built; the message says how to fix it."""


def cache_dir() -> Path:
    if os.environ.get("TINYC_CACHE_DIR"):
        return Path(os.environ["TINYC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinyc"


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise TinycError(
            f"{QEMU} not found: install QEMU (Debian/Ubuntu: apt-get install qemu-system-arm)"
        )
    return path


def qemu_version(qemu: str | None = None) -> str:
    """The full version line of QEMU, e.g. ``7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)``."""
    out = _run([qemu or qemu_binary(), "--version"]).stdout
    m = re.search(r"version\s+(\S+(?:\s+\([^)]*\))?)", out)
    if not m:
        raise TinycError(f"cannot read the version of {qemu or QEMU}: {out.strip()!r}")
    return m.group(1)


def _version_dir_name(version: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_-]+", "_", version).strip("_")


def _plugin_source() -> bytes:
    return (
        resources.files("tinyc") / "runtime" / "qemu_plugin" / "tinyc_insn_count.c"
    ).read_bytes()


@dataclass(frozen=True)
class PluginInfo:
    path: Path
    qemu_version: str
    header: Path


def plugin_path(qemu: str | None = None) -> Path:
    """Where the plugin for this QEMU and this plugin source lives (built or not)."""
    src_hash = hashlib.sha256(_plugin_source()).hexdigest()[:12]
    return (
        cache_dir()
        / "qemu-plugin"
        / _version_dir_name(qemu_version(qemu))
        / f"{_PLUGIN_NAME}-{src_hash}.so"
    )


def ensure_plugin(qemu: str | None = None, force: bool = False) -> PluginInfo:
    """The built plugin for the installed QEMU; builds it (and fetches the header) if needed."""
    qemu = qemu or qemu_binary()
    version = qemu_version(qemu)
    target = plugin_path(qemu)
    header = _find_header(target.parent, qemu, fetch=not target.exists() or force)
    if target.exists() and not force:
        return PluginInfo(target, version, header)
    _compile(header, target)
    return PluginInfo(target, version, header)


# ---------------------------------------------------------------------------------------------
# the header


def _find_header(version_dir: Path, qemu: str, fetch: bool) -> Path:
    env = os.environ.get("TINYC_QEMU_PLUGIN_H")
    if env:
        if not Path(env).is_file():
            raise PluginSetupError(f"TINYC_QEMU_PLUGIN_H={env} is not a file")
        return Path(env)
    cached = version_dir / _HEADER
    if cached.is_file():
        return cached
    for p in _SYSTEM_HEADERS:
        if Path(p).is_file():
            return Path(p)
    if not fetch:
        return cached
    version_dir.mkdir(parents=True, exist_ok=True)
    data = _debian_header(qemu)
    tmp = cached.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, cached)
    return cached


def _fix_hint(version: str) -> str:
    return (
        f"on Debian/Ubuntu this needs apt-get and network access to the distribution's archive; "
        f"elsewhere set TINYC_QEMU_PLUGIN_H to the include/qemu/qemu-plugin.h of QEMU {version}"
    )


def _debian_header(qemu: str) -> bytes:
    """qemu-plugin.h from Debian's source package of the QEMU that provides ``qemu``."""
    version = qemu_version(qemu)
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        raise PluginSetupError(
            f"cannot find qemu-plugin.h for QEMU {version}: not a Debian system; "
            f"{_fix_hint(version)}"
        )
    real = os.path.realpath(qemu)
    owner = _run(["dpkg-query", "-S", real])
    if owner.returncode != 0:
        raise PluginSetupError(
            f"{real} does not come from a Debian package, so its source cannot be fetched; "
            f"{_fix_hint(version)}"
        )
    package = owner.stdout.split(":", 1)[0].strip()
    q = _run(["dpkg-query", "-W", "-f=${source:Package} ${source:Version} ${Version}", package])
    src_pkg, src_ver, bin_ver = q.stdout.split()
    sources = _deb_src_lines(package, bin_ver)
    if not sources:
        raise PluginSetupError(
            f"no apt source for {package} {bin_ver} found; run apt-get update first; "
            f"{_fix_hint(version)}"
        )
    with tempfile.TemporaryDirectory(prefix="tinyc-qemu-src-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "lists" / "partial").mkdir(parents=True)
        (tmp / "cache" / "archives" / "partial").mkdir(parents=True)
        (tmp / "dl").mkdir()
        (tmp / "sources.list").write_text("\n".join(sources) + "\n")
        apt = [
            "apt-get",
            "-q",
            "-o", f"Dir::Etc::SourceList={tmp / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={tmp / 'lists'}",
            "-o", f"Dir::Cache={tmp / 'cache'}",
            "-o", "APT::Sandbox::User=root" if os.geteuid() == 0 else "Debug::NoLocking=1",
        ]  # fmt: skip
        upd = _run([*apt, "update"])
        got = _run([*apt, "source", "--download-only", f"{src_pkg}={src_ver}"], cwd=tmp / "dl")
        if got.returncode != 0:
            detail = (got.stderr or upd.stderr).strip().splitlines()
            raise PluginSetupError(
                f"could not download the Debian source of {src_pkg} {src_ver} "
                f"({detail[-1] if detail else 'apt-get failed'}); {_fix_hint(version)}"
            )
        return _header_from_source(tmp / "dl", src_pkg)


def _deb_src_lines(package: str, version: str) -> list[str]:
    """deb-src lines for the archives that offer the installed version of ``package``."""
    policy = _run(["apt-cache", "policy", package], env={**os.environ, "LC_ALL": "C"}).stdout
    keys = _signed_by()
    out = []
    for uri, suite, component in policy_origins(policy, version):
        key = keys.get(uri.rstrip("/"))
        opt = f"[signed-by={key}] " if key else ""
        out.append(f"deb-src {opt}{uri} {suite} {component}")
    return out


def policy_origins(policy: str, version: str) -> list[tuple[str, str, str]]:
    """(URI, suite, component) of the archives listed for ``version`` in ``apt-cache policy``."""
    lines = policy.splitlines()
    origins: list[tuple[str, str, str]] = []
    for i, line in enumerate(lines):
        m = re.match(r"\s*(?:\*\*\*)?\s*(\S+)\s+-?\d+\s*$", line)
        if not m or m.group(1) != version:
            continue
        for follow in lines[i + 1 :]:
            o = re.match(r"\s+-?\d+\s+(\S+://\S+)\s+(\S+)\s+\S+\s+Packages", follow)
            if o:
                suite, _, component = o.group(2).partition("/")
                origins.append((o.group(1), suite, component or "main"))
            elif not re.match(r"\s+-?\d+\s+/var/lib/dpkg/status", follow):
                break
    return list(dict.fromkeys(origins))


def _signed_by() -> dict[str, str]:
    """URI -> keyring of the system's deb822 sources (so that our deb-src lines verify)."""
    keys: dict[str, str] = {}
    parts = Path("/etc/apt/sources.list.d")
    files = sorted(parts.glob("*.sources")) if parts.is_dir() else []
    for f in files:
        for stanza in f.read_text(errors="replace").split("\n\n"):
            fields = dict(
                (k.strip(), v.strip())
                for k, _, v in (ln.partition(":") for ln in stanza.splitlines())
                if not k.startswith((" ", "#")) and v
            )
            if fields.get("Signed-By", "").startswith("/"):
                for uri in fields.get("URIs", "").split():
                    keys[uri.rstrip("/")] = fields["Signed-By"]
    return keys


def _header_from_source(dl: Path, src_pkg: str) -> bytes:
    origs = sorted(dl.glob(f"{src_pkg}_*.orig.tar.*"))
    if not origs:
        raise PluginSetupError(f"the {src_pkg} source package has no upstream tarball")
    header = None
    with tarfile.open(origs[0], mode="r|*") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith("/" + _HEADER_IN_SOURCE):
                header = tar.extractfile(member).read()  # type: ignore[union-attr]
                break
    if header is None:
        raise PluginSetupError(f"{origs[0].name} has no {_HEADER_IN_SOURCE}")
    debian = sorted(dl.glob(f"{src_pkg}_*.debian.tar.*"))
    if debian:
        header = _apply_debian_patches(debian[0], header)
    return header


def _apply_debian_patches(debian_tar: Path, header: bytes) -> bytes:
    """Apply the hunks of Debian's patches (in series order) that touch the header."""
    patches: dict[str, bytes] = {}
    with tarfile.open(debian_tar) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith("debian/patches/"):
                patches[m.name[len("debian/patches/") :]] = tar.extractfile(m).read()  # type: ignore[union-attr]
    series = patches.get("series", b"").decode(errors="replace").splitlines()
    relevant = []
    for name in (s.split("#")[0].strip() for s in series):
        text = patches.get(name.split()[0] if name else "", b"").decode(errors="replace")
        hunk = _file_diff(text, _HEADER_IN_SOURCE)
        if hunk:
            relevant.append(hunk)
    if not relevant:
        return header
    if shutil.which("patch") is None:
        raise PluginSetupError("Debian patches the plugin header, and `patch` is not installed")
    with tempfile.TemporaryDirectory(prefix="tinyc-qemu-hdr-") as d:
        path = Path(d) / _HEADER_IN_SOURCE
        path.parent.mkdir(parents=True)
        path.write_bytes(header)
        for diff in relevant:
            r = _run(["patch", "-p1", "--no-backup-if-mismatch", "-s"], cwd=d, input=diff)
            if r.returncode != 0:
                raise PluginSetupError(f"a Debian patch to {_HEADER} does not apply: {r.stdout}")
        return path.read_bytes()


def _file_diff(patch: str, rel: str) -> str:
    """The parts of a unified diff that change ``rel`` (paths with one leading component)."""
    out, keep = [], False
    lines = patch.splitlines(keepends=True)
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.startswith("--- ") and nxt.startswith("+++ "):
            target = nxt[4:].split("\t")[0].strip()
            keep = target.split("/", 1)[-1] == rel
        elif line.startswith(("diff ", "Index: ")):
            keep = False
        if keep:
            out.append(line)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# the plugin


def _compile(header: Path, target: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise PluginSetupError("no host C compiler (gcc) to build the QEMU plugin; install gcc")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tinyc-plugin-") as d:
        src = Path(d) / "tinyc_insn_count.c"
        src.write_bytes(_plugin_source())
        inc = Path(d) / "include"
        inc.mkdir()
        shutil.copyfile(header, inc / _HEADER)
        tmp = Path(d) / "plugin.so"
        r = _run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror",
                  f"-I{inc}", str(src), "-o", str(tmp)])  # fmt: skip
        if r.returncode != 0:
            first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip())
            raise PluginSetupError(
                f"the QEMU plugin does not build against {header} ({first}); tinyc's plugin uses "
                "QEMU's plugin API version 1 (QEMU 4.2 to 8.x)"
            )
        staged = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copyfile(tmp, staged)
        os.replace(staged, target)


def describe(info: PluginInfo) -> str:
    buf = io.StringIO()
    buf.write(f"QEMU {info.qemu_version}\n")
    buf.write(f"plugin header: {info.header}\n")
    buf.write(f"instruction-count plugin: {info.path}\n")
    return buf.getvalue()
