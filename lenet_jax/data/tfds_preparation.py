"""Whether this machine can prepare a stock TFDS dataset: its files already downloaded
(TFDS's cache or manual folder) or its hosts reachable, and TensorFlow installed. Asked
before TFDS tries, which offline would retry its downloads for minutes before failing."""

import os
import socket
import urllib.parse
import urllib.request


def preparation_blocker(builder) -> str | None:
    """Why this machine cannot prepare `builder`'s dataset, or None if it can try.

    Stock builders need TensorFlow to encode. The network is needed only when the files
    are neither in TFDS's download cache nor in its manual folder; it counts as reachable
    when a proxy is configured or every host the dataset downloads from resolves. (Offline,
    TFDS's own download would retry for minutes before failing.)
    """
    if needs_download(builder):
        hosts = sorted({urllib.parse.urlparse(url).hostname for url in builder.url_infos or {}})
        if not _online(hosts):
            return (
                f"its files are not in {_download_dir(builder)} (or {manual_dir(builder)}), "
                f"and {', '.join(hosts) or 'the download hosts'} cannot be reached from here"
            )
    if not has_tensorflow():
        return (
            "preparing a stock TFDS dataset needs TensorFlow: pip install 'lenet_jax[tf]', "
            "or write it as array_record without TensorFlow: python scripts/prepare_tfds.py"
        )
    return None


def has_tensorflow() -> bool:
    """Whether TensorFlow is importable: TFDS's stock builders need it to prepare."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def needs_download(builder) -> bool:
    """False when every registered file is in TFDS's download cache, or the manual folder
    holds files, or the dataset is a manual-download one (it never downloads)."""
    from tensorflow_datasets.core.download import resource

    manual = manual_dir(builder)
    if getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None) or (
        os.path.isdir(manual) and os.listdir(manual)
    ):
        return False
    url_infos = builder.url_infos or {}
    downloads = _download_dir(builder)
    return not url_infos or not all(
        os.path.exists(os.path.join(downloads, resource.get_dl_fname(url, info.checksum)))
        for url, info in url_infos.items()
    )


def _download_dir(builder) -> str:
    return os.path.join(os.fspath(builder.data_dir_root), "downloads")


def manual_dir(builder) -> str:
    return os.path.join(_download_dir(builder), "manual")


def _online(hosts: list[str]) -> bool:
    proxies = urllib.request.getproxies()
    if any(proxies.get(scheme) for scheme in ("https", "http", "all")):
        return True  # the proxy resolves the hosts, not this machine
    try:
        for host in hosts or ["storage.googleapis.com"]:
            socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
