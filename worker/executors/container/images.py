"""Getting a job's image onto the engine: already there, pulled from a registry, or loaded
from IPFS.

- A name the engine already holds is used as it is (a provider pre-loads what it wants to
  serve offline; `:latest` is not re-pulled).
- Otherwise it is pulled, with the pull's progress in the job's logs; once the layers the
  registry announces add up to more than `max_image_bytes`, the pull is abandoned (closing
  the stream makes the engine cancel it) and the job fails.
- `ipfs://<cid>` names a `docker save` archive pinned on the node: fetched through the
  loop's verified content fetch (every block checked against the CID), loaded, and tagged
  `localhost/dcm-ipfs:<cid>` so the next job with the same CID loads nothing. The archive must
  hold exactly one image.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marketplace.errors import ValidationFailed
from worker.executors.base import Reporter
from worker.executors.container.engine import EngineUnavailable

IPFS_REPOSITORY = "localhost/dcm-ipfs"


def ensure_image(
    client: Any,
    image: str,
    *,
    fetch: Callable[[str], Path] | None,
    report: Reporter,
    max_image_bytes: int,
) -> Any:
    """The engine's `Image` for `image`, pulled or loaded as needed."""
    from docker.errors import APIError, ImageNotFound

    if image.startswith("ipfs://"):
        return _from_ipfs(client, image[len("ipfs://") :], fetch, report, max_image_bytes)
    try:
        return client.images.get(image)
    except ImageNotFound:
        pass
    except APIError as exc:
        raise EngineUnavailable(f"image lookup failed: {exc}") from exc
    _pull(client, image, report, max_image_bytes)
    try:
        pulled = client.images.get(image)
    except APIError as exc:
        raise EngineUnavailable(f"image {image} pulled but not found: {exc}") from exc
    size = int(pulled.attrs.get("Size") or 0)
    if size > max_image_bytes:  # the registry announced less than it sent
        with contextlib.suppress(APIError):  # by name: other tags of the same image stay
            client.images.remove(image)
        raise ValidationFailed(
            f"image {image} is {size} bytes, over this provider's limit of {max_image_bytes} bytes"
        )
    return pulled


def _pull(client: Any, image: str, report: Reporter, max_image_bytes: int) -> None:
    from docker.errors import APIError, NotFound
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(image)
    report.log(f"pulling {image}")
    sizes: dict[str, int] = {}
    done: dict[str, int] = {}
    last_percent = -10
    try:
        stream = client.api.pull(repository, tag=tag or "latest", stream=True, decode=True)
        try:
            for event in stream:
                if "error" in event:
                    raise ValidationFailed(f"image {image} could not be pulled: {event['error']}")
                detail = event.get("progressDetail") or {}
                layer = str(event.get("id", ""))
                if event.get("status") == "Downloading" and detail.get("total"):
                    sizes[layer] = int(detail["total"])
                    done[layer] = int(detail.get("current") or 0)
                    total = sum(sizes.values())
                    if total > max_image_bytes:
                        raise ValidationFailed(
                            f"image {image} is over this provider's limit of "
                            f"{max_image_bytes} bytes ({total} bytes of layers so far)"
                        )
                    percent = int(100 * sum(done.values()) / total)
                    if percent >= last_percent + 10:
                        last_percent = percent
                        report.log(f"pull {image}: {percent}% of {total} bytes")
                elif event.get("status") and not detail:
                    if event["status"] == "Download complete" and layer in sizes:
                        done[layer] = sizes[layer]
                        total = sum(sizes.values())
                        percent = int(100 * sum(done.values()) / total)
                        last_percent = percent
                        report.log(f"pull {image}: {percent}% of {total} bytes")
                    report.log(f"pull {image}: {layer} {event['status']}".strip())
        finally:
            with contextlib.suppress(Exception):
                stream.close()
    except NotFound as exc:
        raise ValidationFailed(f"image {image} was not found: {exc.explanation}") from exc
    except APIError as exc:
        if exc.status_code is not None and 400 <= exc.status_code < 500:
            raise ValidationFailed(f"image {image} could not be pulled: {exc.explanation}") from exc
        raise EngineUnavailable(f"pull of {image} failed: {exc}") from exc


def _from_ipfs(
    client: Any,
    cid: str,
    fetch: Callable[[str], Path] | None,
    report: Reporter,
    max_image_bytes: int,
) -> Any:
    from docker.errors import APIError, ImageNotFound

    tag = f"{IPFS_REPOSITORY}:{cid}"
    with contextlib.suppress(ImageNotFound):
        return client.images.get(tag)
    if fetch is None:
        raise EngineUnavailable("this provider cannot fetch content for ipfs:// images")
    report.log(f"fetching image archive {cid} from IPFS")
    archive = fetch(cid)
    if not archive.is_file():
        raise ValidationFailed(f"ipfs://{cid} is a directory, not a `docker save` archive")
    size = archive.stat().st_size
    if size > max_image_bytes:
        raise ValidationFailed(
            f"image archive {cid} is {size} bytes, over this provider's limit of "
            f"{max_image_bytes} bytes"
        )
    report.log(f"loading image archive {cid} ({size} bytes, CID verified)")
    try:
        with open(archive, "rb") as fh:
            events = list(client.api.load_image(fh))
    except APIError as exc:
        if exc.status_code is not None and 400 <= exc.status_code < 500:
            raise ValidationFailed(
                f"ipfs://{cid} is not an image archive: {exc.explanation}"
            ) from exc
        raise EngineUnavailable(f"loading image {cid} failed: {exc}") from exc
    loaded = _loaded_names(events)
    if len(loaded) != 1:
        raise ValidationFailed(
            f"ipfs://{cid} must hold exactly one image (it holds {len(loaded)}: {loaded})"
        )
    image = client.images.get(loaded[0])
    image.tag(IPFS_REPOSITORY, tag=cid)
    return client.images.get(tag)


def _loaded_names(events: list[dict[str, Any]]) -> list[str]:
    """Image ids/names from `docker load`'s answer ("Loaded image: x" or "Loaded image ID:
    sha256:..."), an error line refusing the archive."""
    names = []
    for event in events:
        if "error" in event:
            raise ValidationFailed(f"the image archive was refused: {event['error']}")
        stream = str(event.get("stream") or "").strip()
        for prefix in ("Loaded image ID: ", "Loaded image: "):
            if stream.startswith(prefix):
                names.append(stream[len(prefix) :].strip())
    return names
