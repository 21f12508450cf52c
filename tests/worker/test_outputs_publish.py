"""Publishing outputs node by node: upload, describe, convert, inline, dedupe, manifest last, clean up."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from handlers.contract import JobResult, OutputFormat, OutputKind, OutputOptions
from handlers.worker._outputs import ComfyDirs
from handlers.worker._publish import OutputPublisher, stored_result
from handlers.worker._staging import job_files
from handlers.worker._storage import MemoryOutputStore, S3OutputStore, UploadFailed
from tests.worker.conftest import make_s3_client

JOB = "job-77"


def _png(path: Path, size: tuple[int, int], mode: str = "RGB") -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new(mode, size, "red").save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


@pytest.fixture
def dirs(tmp_path: Path) -> ComfyDirs:
    d = ComfyDirs(output=tmp_path / "output", temp=tmp_path / "temp", input=tmp_path / "input")
    for p in (d.output, d.temp, d.input):
        p.mkdir()
    return d


def ui_images(*names: str, type_: str = "output", subfolder: str = "probe") -> dict[str, list[dict[str, str]]]:
    return {"images": [{"filename": n, "subfolder": subfolder, "type": type_} for n in names]}


async def test_publish_node_uploads_and_describes(dirs: ComfyDirs) -> None:
    data = _png(dirs.output / "probe" / "a_00001_.png", (40, 30))
    store = MemoryOutputStore(prefix="out")
    publisher = OutputPublisher(store, JOB, dirs, OutputOptions(presign_seconds=120))
    (item,) = await publisher.publish_node("9", ui_images("a_00001_.png"), "Save Image")
    assert item.kind is OutputKind.IMAGE
    assert (item.node_id, item.node_title, item.filename, item.temp) == ("9", "Save Image", "a_00001_.png", False)
    assert (item.mime, item.bytes, item.width, item.height) == ("image/png", len(data), 40, 30)
    assert item.sha256 == hashlib.sha256(data).hexdigest()
    assert item.s3_uri == f"s3://memory-bucket/out/{JOB}/9/a_00001_.png"
    assert item.url is not None and "expires=120" in item.url
    assert item.base64 is None  # inline is off by default
    assert store.objects[f"out/{JOB}/9/a_00001_.png"] == data
    # Re-announced (cached node, or the history race): published once.
    assert await publisher.publish_node("9", ui_images("a_00001_.png"), "Save Image") == []
    assert len(publisher.items) == 1


async def test_texts_temp_and_name_clashes(dirs: ComfyDirs) -> None:
    _png(dirs.output / "x" / "same.png", (2, 2))
    _png(dirs.output / "y" / "same.png", (3, 3))
    _png(dirs.temp / "preview.png", (4, 4))
    store = MemoryOutputStore()
    ui = {
        "images": [
            {"filename": "same.png", "subfolder": "x", "type": "output"},
            {"filename": "same.png", "subfolder": "y", "type": "output"},
            {"filename": "preview.png", "subfolder": "", "type": "temp"},
        ],
        "text": ["caption"],
    }
    items = await OutputPublisher(store, JOB, dirs).publish_node("3", ui)
    assert [(i.kind, i.text or i.s3_uri) for i in items] == [
        (OutputKind.TEXT, "caption"),
        (OutputKind.IMAGE, f"s3://memory-bucket/{JOB}/3/same.png"),
        (OutputKind.IMAGE, f"s3://memory-bucket/{JOB}/3/same-1.png"),
    ]
    with_temp = OutputPublisher(MemoryOutputStore(), JOB, dirs, OutputOptions(include_temp=True))
    temp_items = await with_temp.publish_node("3", ui)
    assert [i.temp for i in temp_items if i.kind is OutputKind.IMAGE] == [False, False, True]


async def test_conversion_only_for_still_images(dirs: ComfyDirs) -> None:
    _png(dirs.output / "s.png", (8, 8), "RGBA")
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(dirs.output / "anim.webp", save_all=True, append_images=frames[1:], duration=50)
    store = MemoryOutputStore()
    options = OutputOptions(format=OutputFormat.JPEG, quality=70)
    publisher = OutputPublisher(store, JOB, dirs, options, work_dir=dirs.temp)
    (still,) = await publisher.publish_node("1", ui_images("s.png", subfolder=""))
    (anim,) = await publisher.publish_node(
        "2", {"images": [{"filename": "anim.webp", "subfolder": "", "type": "output"}], "animated": [True]}
    )
    assert (still.mime, still.s3_uri) == ("image/jpeg", f"s3://memory-bucket/{JOB}/1/s.jpg")
    assert store.objects[f"{JOB}/1/s.jpg"][:3] == b"\xff\xd8\xff"
    assert still.sha256 == hashlib.sha256(store.objects[f"{JOB}/1/s.jpg"]).hexdigest()
    assert (anim.kind, anim.mime) == (OutputKind.ANIMATED, "image/webp")
    assert sorted(p.name for p in dirs.temp.iterdir()) == []  # converted copies removed after upload
    assert store.content_types[f"{JOB}/1/s.jpg"] == "image/jpeg"


async def test_inline_base64_under_the_cap_only(dirs: ComfyDirs) -> None:
    small = _png(dirs.output / "small.png", (4, 4))
    (dirs.output / "big.bin").write_bytes(b"\x00" * 5000)
    options = OutputOptions(inline_base64_max_bytes=1000)
    items = await OutputPublisher(MemoryOutputStore(), JOB, dirs, options).publish_node(
        "5",
        {
            "images": [{"filename": "small.png", "subfolder": "", "type": "output"}],
            "blobs": [{"filename": "big.bin", "subfolder": "", "type": "output"}],
        },
    )
    assert items[0].base64 is not None and base64.b64decode(items[0].base64) == small
    assert (items[1].kind, items[1].base64) == (OutputKind.FILE, None)


async def test_upload_failure_is_raised_not_skipped(dirs: ComfyDirs) -> None:
    _png(dirs.output / "a.png", (2, 2))
    store = MemoryOutputStore()
    store.fail_uploads = 1
    publisher = OutputPublisher(store, JOB, dirs)
    with pytest.raises(UploadFailed, match="injected"):
        await publisher.publish_node("1", ui_images("a.png", subfolder=""))
    assert publisher.items == []
    # The node was not marked done: publishing it again (e.g. from /history) uploads it, under the same key.
    (item,) = await publisher.publish_node("1", ui_images("a.png", subfolder=""))
    assert item.s3_uri == f"s3://memory-bucket/{JOB}/1/a.png"


async def test_hostile_or_missing_paths_fail_clearly(dirs: ComfyDirs) -> None:
    publisher = OutputPublisher(MemoryOutputStore(), JOB, dirs)
    with pytest.raises(UploadFailed, match="leaves") as info:
        await publisher.publish_node("1", ui_images("a.png", subfolder="../../etc"))
    assert info.value.retryable is False
    with pytest.raises(UploadFailed, match="cannot read output"):
        await publisher.publish_node("1", ui_images("missing.png"))


async def test_manifest_is_written_last_and_read_back(dirs: ComfyDirs) -> None:
    _png(dirs.output / "a.png", (2, 2))
    store = MemoryOutputStore(prefix="p")
    publisher = OutputPublisher(store, JOB, dirs)
    assert await stored_result(store, JOB) is None
    items = await publisher.publish_node("1", ui_images("a.png", subfolder=""))
    result = await publisher.commit(JobResult(job_id=JOB, outputs=items))
    assert result.manifest_uri == f"s3://memory-bucket/p/{JOB}/manifest.json"
    assert store.writes[-1] == f"p/{JOB}/manifest.json"
    again = await stored_result(store, JOB)
    assert again == result


async def test_job_files_cleanup_covers_published_outputs_and_temp_previews(dirs: ComfyDirs) -> None:
    path = dirs.output / "probe" / "a.png"
    _png(path, (2, 2))
    preview = dirs.temp / "ComfyUI_temp_00001_.png"
    _png(preview, (2, 2))
    other_job = dirs.output / "probe" / "b.png"
    _png(other_job, (2, 2))
    with pytest.raises(UploadFailed):
        async with job_files(dirs.input, JOB, [dirs.output, dirs.temp]) as files:
            publisher = OutputPublisher(MemoryOutputStore(), JOB, dirs, files=files)
            await publisher.publish_node("1", ui_images("a.png"))
            assert await publisher.publish_node("3", ui_images(preview.name, type_="temp", subfolder="")) == []
            await publisher.publish_node("2", ui_images("missing.png"))
    assert not path.exists()
    assert not preview.exists()
    assert other_job.exists()


async def test_end_to_end_against_moto(dirs: ComfyDirs, moto_endpoint: str, s3_bucket: str) -> None:
    data = _png(dirs.output / "probe" / "img.png", (16, 9))
    store = S3OutputStore(s3_bucket, "relay", client=make_s3_client(moto_endpoint))
    publisher = OutputPublisher(store, JOB, dirs)
    (item,) = await publisher.publish_node("12", ui_images("img.png"), "SaveImage")
    assert item.s3_uri == f"s3://{s3_bucket}/relay/{JOB}/12/img.png"
    assert item.url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(item.url)
    assert (response.status_code, response.content) == (200, data)
    committed = await publisher.commit(JobResult(job_id=JOB, outputs=[item]))
    assert await stored_result(store, JOB) == committed


async def test_named_keys_that_collide_at_upload_fail_the_job_as_invalid_input(dirs: ComfyDirs) -> None:
    from handlers.contract import ErrorCode
    from handlers.worker._storage import OutputNameCollision
    from handlers.workflow import BoundWorkflow, output_namer

    _png(dirs.output / "probe" / "a_00001_.png", (8, 8))
    _png(dirs.output / "probe" / "a_00002_.png", (8, 8))
    bound = BoundWorkflow(graph={"9": {"class_type": "SaveImage", "inputs": {}}})
    namer = output_namer("named/{node}", bound, job_id=JOB, labels={}, output_nodes=["9"])
    store = MemoryOutputStore(prefix="out")
    publisher = OutputPublisher(store, JOB, dirs, namer=namer)
    with pytest.raises(OutputNameCollision) as caught:
        await publisher.publish_node("9", ui_images("a_00001_.png", "a_00002_.png"))
    assert list(store.objects) == ["out/named/9.png"]  # the first kept its key; the second overwrote nothing
    error = caught.value.to_job_error(JOB)
    assert (error.code, error.retryable, error.problems[0].path) == (
        ErrorCode.INVALID_INPUT,
        False,
        "input.output.name",
    )
    # A name can never take the manifest's key.
    manifest = output_namer("{job_id}/manifest.{ext}", bound, job_id=JOB, labels={}, output_nodes=["9"])
    (dirs.output / "probe" / "m.json").write_text("{}")
    publisher = OutputPublisher(MemoryOutputStore(), JOB, dirs, namer=manifest)
    with pytest.raises(OutputNameCollision, match="manifest"):
        await publisher.publish_node("9", {"files": [{"filename": "m.json", "subfolder": "probe", "type": "output"}]})


async def test_png_asked_as_png_keeps_comfyuis_metadata_and_stripping_drops_it(dirs: ComfyDirs) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", '{"3": {}}')
    Image.new("RGB", (8, 8), "red").save(dirs.output / "k.png", pnginfo=info)
    store = MemoryOutputStore()
    kept = OutputPublisher(store, JOB, dirs, OutputOptions(format=OutputFormat.PNG), work_dir=dirs.temp)
    (item,) = await kept.publish_node("1", ui_images("k.png", subfolder=""))
    with Image.open(io.BytesIO(store.objects[f"{JOB}/1/k.png"])) as image:
        assert image.text == {"prompt": '{"3": {}}'}
    options = OutputOptions(format=OutputFormat.PNG, strip_metadata=True)
    stripped = OutputPublisher(store, "job-78", dirs, options, work_dir=dirs.temp)
    (item,) = await stripped.publish_node("1", ui_images("k.png", subfolder=""))
    data = store.objects["job-78/1/k.png"]
    with Image.open(io.BytesIO(data)) as image:
        assert image.text == {}
    assert item.sha256 == hashlib.sha256(data).hexdigest() and item.bytes == len(data)
    assert sorted(p.name for p in dirs.temp.iterdir()) == []  # the stripped copy is removed after upload
    assert (dirs.output / "k.png").exists()  # the original is the job's cleanup's, not the publisher's
