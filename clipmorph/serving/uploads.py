"""File fields take files, never addresses.

BentoML reads a text value sent in a file field (``-F image=photo.jpg`` without the ``@``, or
a URL) as an address and downloads it, from inside the server. ClipMorph offers no fetching,
so such a value gets a 400 that says to upload the file, and nothing is ever fetched.
BentoML has no setting for this: the check replaces its multipart serde's file step.
"""

from __future__ import annotations

from bentoml.exceptions import BadInput

MESSAGE = "{name}: send the file itself (multipart upload, curl -F 'field=@path'), not a name or an address"


async def only_uploads(obj):
    from starlette.datastructures import UploadFile

    if isinstance(obj, UploadFile):
        return obj
    from clipmorph.serving import metrics

    metrics.rejected("not_a_file")
    raise BadInput(MESSAGE.format(name="file field"))


def refuse_addresses_in_file_fields() -> None:
    """Install the check (idempotent); every API worker does it when it imports the service."""
    from _bentoml_impl.serde import MultipartSerde

    if not hasattr(MultipartSerde, "ensure_file"):  # BentoML changed: fail loudly, never run unguarded
        raise RuntimeError("this BentoML has no MultipartSerde.ensure_file: review clipmorph/serving/uploads.py")
    MultipartSerde.ensure_file = staticmethod(only_uploads)
