"""Reading checkpoint files from where Tune put them: a local path (or NFS mount) or a
pyarrow filesystem URI (s3://, gs://, ...)."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse, Response


def open_checkpoint(path: str, filename: str) -> Response:
    if "://" not in path or path.startswith("file://"):
        local = Path(path.removeprefix("file://"))
        if not local.is_file():
            raise FileNotFoundError(path)
        return FileResponse(local, media_type="application/octet-stream", filename=filename)
    import pyarrow.fs

    fs, inner = pyarrow.fs.FileSystem.from_uri(path)
    info = fs.get_file_info(inner)
    if info.type != pyarrow.fs.FileType.File:
        raise FileNotFoundError(path)
    with fs.open_input_stream(inner) as f:
        data = f.read()
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
