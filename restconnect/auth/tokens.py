"""The durable token store shared by notebooks and scheduled scripts.

Tokens persist per connector and identity, encrypted at rest with Fernet.
The key lives in the OS keyring when a usable backend exists, otherwise in a
0600 key file beside the store. Folders are 0700, files 0600, every write is
atomic (temporary file, fsync, ``os.replace``), and a file lock per entry lets
several processes agree on who refreshes a token.

Example:
    >>> store = TokenStore(root=tmp_path)                       # doctest: +SKIP
    >>> store.save("github", "client-1", {"access_token": "..."})  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from restconnect.cache import restconnect_home
from restconnect.exceptions import AuthError

__all__ = ["TokenStore", "default_token_store", "store_root"]

logger = logging.getLogger(__name__)

_KEYRING_SERVICE = "restconnect:token-store"
_KEY_FILE = "token-store.key"
_FORMAT_VERSION = 1


def store_root() -> Path:
    """Where tokens are kept: ``$RESTCONNECT_HOME``, else the user data folder."""
    home = restconnect_home()
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_data_dir("restconnect", appauthor=False))


class TokenStore:
    """Encrypted, per-connector and per-identity token persistence.

    Args:
        root: the store folder; ``store_root()`` when omitted.
        use_keyring: keep the encryption key in the OS keyring. ``None`` means
            "when a usable backend exists".
        lock_timeout: seconds to wait for another process holding an entry.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        use_keyring: bool | None = None,
        lock_timeout: float = 60.0,
    ):
        self.root = Path(root) if root is not None else store_root()
        self.use_keyring = use_keyring
        self.lock_timeout = lock_timeout
        self._fernet: Any = None

    def __repr__(self) -> str:
        return f"<TokenStore {str(self.root)!r}>"

    # ------------------------------------------------------------ paths

    def path_for(self, connector: str, identity: str) -> Path:
        """The file holding one connector's token for one identity."""
        digest = hashlib.sha256(f"{connector}\0{identity}".encode()).hexdigest()[:32]
        return self._folder(connector) / f"{digest}.token"

    def _folder(self, connector: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", connector) or "_default"
        return self.root / "tokens" / safe

    def _ensure_folder(self, folder: Path) -> None:
        # The platform's data folder itself may not exist yet on a new machine.
        self.root.parent.mkdir(parents=True, exist_ok=True)
        for part in (self.root, self.root / "tokens", folder):
            part.mkdir(mode=0o700, exist_ok=True)
            os.chmod(part, 0o700)

    # ------------------------------------------------------------ reading and writing

    def load(self, connector: str, identity: str) -> dict[str, Any] | None:
        """The stored token mapping, or None when absent or unreadable."""
        path = self.path_for(connector, identity)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        data = self._decrypt(blob, path)
        if data is None or data.get("identity") != identity:
            return None
        return data.get("token")

    def save(self, connector: str, identity: str, token: dict[str, Any]) -> None:
        """Write the token atomically; the old file stays whole until the new one is."""
        path = self.path_for(connector, identity)
        self._ensure_folder(path.parent)
        record = {
            "version": _FORMAT_VERSION,
            "connector": connector,
            "identity": identity,
            "saved_at": time.time(),
            "token": token,
        }
        blob = self._cipher().encrypt(json.dumps(record).encode())
        _atomic_write(path, blob)
        logger.debug("stored a token for %s", connector)

    def delete(self, connector: str, identity: str) -> bool:
        """Remove a stored token; True when there was one."""
        path = self.path_for(connector, identity)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        logger.debug("removed the stored token for %s", connector)
        return True

    def delete_connector(self, connector: str) -> int:
        """Remove every stored token of a connector (``restconnect logout``)."""
        folder = self._folder(connector)
        removed = 0
        for path in folder.glob("*.token") if folder.is_dir() else ():
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    @contextlib.contextmanager
    def lock(self, connector: str, identity: str) -> Iterator[None]:
        """Hold the cross-process lock of one entry (single-flight refresh)."""
        from filelock import FileLock, Timeout

        path = self.path_for(connector, identity)
        self._ensure_folder(path.parent)
        lock = FileLock(str(path.with_suffix(".lock")), mode=0o600)
        try:
            lock.acquire(timeout=self.lock_timeout)
        except Timeout:
            raise AuthError(
                f"another process has held the token lock for over "
                f"{self.lock_timeout:g} s ({path.with_suffix('.lock')})",
                connector=connector,
            ) from None
        try:
            yield
        finally:
            lock.release()

    # ------------------------------------------------------------ encryption

    def _decrypt(self, blob: bytes, path: Path) -> dict[str, Any] | None:
        from cryptography.fernet import InvalidToken

        try:
            return json.loads(self._cipher().decrypt(blob))
        except (InvalidToken, ValueError):
            logger.warning(
                "the token file %s cannot be decrypted with this "
                "machine's key; a new sign-in is needed",
                path,
            )
            return None

    def _cipher(self) -> Any:
        if self._fernet is None:
            from cryptography.fernet import Fernet

            self._fernet = Fernet(self._key())
        return self._fernet

    def _key(self) -> bytes:
        from filelock import FileLock

        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Two processes starting together must not each create a key.
        with FileLock(str(self.root / ".key.lock"), mode=0o600):
            if self._keyring_usable():
                return self._keyring_key()
            return self._file_key()

    def _keyring_usable(self) -> bool:
        if self.use_keyring is False:
            return False
        try:
            import keyring
            from keyring.backends import fail

            backend = keyring.get_keyring()
        except Exception:  # noqa: BLE001 - any backend failure means "no keyring"
            return False
        usable = not isinstance(backend, fail.Keyring) and backend.priority > 0
        if self.use_keyring and not usable:
            logger.warning("no usable OS keyring; the token key goes in a 0600 file")
        return usable

    def _keyring_key(self) -> bytes:
        import keyring
        from cryptography.fernet import Fernet

        # One key per store folder, so test stores never share a production key.
        account = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        value = keyring.get_password(_KEYRING_SERVICE, account)
        if value is None:
            value = Fernet.generate_key().decode()
            keyring.set_password(_KEYRING_SERVICE, account, value)
            if keyring.get_password(_KEYRING_SERVICE, account) != value:
                # A backend that accepts but forgets would lose every token.
                logger.warning(
                    "the OS keyring did not keep the token key; "
                    "using a 0600 key file instead"
                )
                return self._file_key()
        return value.encode()

    def _file_key(self) -> bytes:
        from cryptography.fernet import Fernet

        path = self.root / _KEY_FILE
        if path.exists():
            os.chmod(path, 0o600)
            return path.read_bytes().strip()
        key = Fernet.generate_key()
        _atomic_write(path, key)
        return key


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_default: TokenStore | None = None


def default_token_store() -> TokenStore:
    """The process-wide store at ``store_root()``, following RESTCONNECT_HOME."""
    global _default
    root = store_root()
    if _default is None or _default.root != root:
        _default = TokenStore(root)
    return _default
