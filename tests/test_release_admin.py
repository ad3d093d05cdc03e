"""The admin's release pages over HTTP (node/web/release_admin.py, node/web/release_uploads.py):
a zip of a folder or several files uploaded as one release, a bad file publishing nothing, the
edit form (details, credits, track order), withdrawing; and unpacking a hostile zip."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from aiohttp import FormData

from node.cid import cid_of_bytes
from node.errors import UsageError
from node.release import verify_release
from node.web.release_uploads import parse_credits, unpack_zip
from node.web.state import NODE
from tests.support.albums import ALBUM, JPEG, make_album
from tests.support.audio import silent_wav
from tests.support.shared import BAD_FIXTURES
from tests.test_admin_pages import Client, ClientFactory, client_of, log_in
from tests.test_release_publish import snapshot
from tests.test_web_pages import make_app

XHR = {"X-Requested-With": "XMLHttpRequest", "Accept": "application/json"}


@pytest.fixture
async def client(aiohttp_client: ClientFactory, web_data_dir: Path) -> Client:
    return await client_of(make_app(web_data_dir), aiohttp_client)


def upload_form(*files: Path, **fields: str) -> FormData:
    """A multipart upload; each file is read as it is sent, as a browser does."""
    form = FormData(quote_fields=False, default_to_multipart=True)
    for path in files:
        form.add_field("file", io.BytesIO(path.read_bytes()), filename=path.name)
    for name, value in fields.items():
        form.add_field(name, value)
    return form


def zip_folder(folder: Path, target: Path, *, top: str | None = None) -> Path:
    with zipfile.ZipFile(target, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(folder).as_posix()
                bundle.write(path, f"{top}/{name}" if top else name)
    return target


async def test_a_zip_is_one_release(client: Client, web_data_dir: Path, tmp_path: Path) -> None:
    album = make_album(tmp_path / "music")
    archive = zip_folder(album.folder, tmp_path / "night-drive.zip", top=ALBUM)
    admin, _ = await log_in(client, web_data_dir)
    response = await client.post(
        "/admin/releases/upload",
        data=upload_form(archive),
        headers={"Cookie": admin.cookie, "X-CSRF-Token": admin.csrf, **XHR},
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    release = body["release"]
    node = client.server.app[NODE]
    verify_release(release, node.identity.did)
    assert (release["title"], release["kind"], len(body["tracks"])) == (ALBUM, "album", 10)
    assert [(t["disc"], t["number"]) for t in release["tracks"]] == album.places
    assert release["cover"]["cid"] == cid_of_bytes(JPEG)
    assert response.headers["Location"] == f"/releases/{release['id'].removeprefix('urn:uuid:')}"
    assert list((web_data_dir / "store" / "tmp").iterdir()) == []  # upload and unpacked gone
    listed = await admin.get("/admin/releases")
    assert ALBUM in listed.words


async def test_files_and_a_cover_with_the_form(
    client: Client, web_data_dir: Path, tmp_path: Path
) -> None:
    files = [silent_wav(tmp_path / f"{name}.wav", 1.0) for name in ("side b", "side a")]
    cover = tmp_path / "art.jpg"
    cover.write_bytes(JPEG)
    admin, _ = await log_in(client, web_data_dir)
    response = await client.post(
        f"/admin/releases/upload?csrf={admin.csrf}",
        data=upload_form(
            *files,
            cover,
            title="Two Sides",
            kind="",
            released="2024-02-29",
            credits="producer: Ada Example\nmastering = Bo\n",
            license="CC-BY-4.0",
        ),
        headers=admin.headers,
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    assert location.startswith("/admin/releases/")
    page = await admin.get(location)
    assert any(n.startswith("Published “Two Sides”, ep, 2 track(s)") for n in page.notices)
    (record,) = await client.server.app[NODE].catalog.releases()
    assert record.released == "2024-02-29" and record.cover_cid == cid_of_bytes(JPEG)
    assert record.document["credits"] == [
        {"role": "producer", "name": "Ada Example"},
        {"role": "mastering", "name": "Bo"},
    ]
    assert record.document["terms"]["license"] == "CC-BY-4.0"
    # every form carries the session's CSRF token, every field a label
    for path in ("/admin/releases", location):
        page = await admin.get(path)
        labelled = {a.get("for") for a in page.all("label")}
        for form in page.forms:
            action = form["attrs"].get("action", "")
            if form["attrs"].get("method") != "post":
                continue
            hidden = [i.get("value") for i in form["inputs"] if i.get("name") == "csrf"]
            assert hidden == [admin.csrf] or action.endswith(f"?csrf={admin.csrf}"), action
            for field in form["inputs"]:
                if field["tag"] == "button" or field.get("type") in ("hidden", "checkbox"):
                    continue
                assert field.get("id") in labelled or field.get("aria-label"), (path, field)


@pytest.mark.parametrize("bad", BAD_FIXTURES[:2], ids=lambda p: p.name)
async def test_a_bad_file_in_a_zip_publishes_nothing(
    client: Client, web_data_dir: Path, tmp_path: Path, bad: Path
) -> None:
    album = make_album(tmp_path / "music")
    (album.folder / "CD2" / bad.name).write_bytes(bad.read_bytes())
    archive = zip_folder(album.folder, tmp_path / "album.zip")
    admin, _ = await log_in(client, web_data_dir)
    before = snapshot(web_data_dir)
    response = await client.post(
        f"/admin/releases/upload?csrf={admin.csrf}",
        data=upload_form(archive),
        headers=admin.headers,
        allow_redirects=False,
    )
    assert response.status == 303 and response.headers["Location"] == "/admin/releases"
    [notice] = (await admin.get("/admin/releases")).notices
    assert notice.startswith("Nothing was published:") and bad.name in notice
    assert snapshot(web_data_dir) == before


async def test_edit_and_withdraw_on_the_form(
    client: Client, web_data_dir: Path, tmp_path: Path
) -> None:
    files = [silent_wav(tmp_path / f"{n}.wav", 1.0) for n in range(3)]
    admin, _ = await log_in(client, web_data_dir)
    response = await client.post(
        "/admin/releases/upload",
        data=upload_form(*files, title="Three"),
        headers={"Cookie": admin.cookie, "X-CSRF-Token": admin.csrf, **XHR},
    )
    release = (await response.json())["release"]
    uuid = release["id"].removeprefix("urn:uuid:")
    a, b, c = (t["id"].removeprefix("urn:uuid:") for t in release["tracks"])
    page = await admin.get(f"/admin/releases/{uuid}")
    assert "Three" in page.words
    catalog = client.server.app[NODE].catalog
    before = snapshot(web_data_dir)
    await admin.post(f"/admin/releases/{uuid}", status=400, title="Three", released="2025-02-30")
    await admin.post(f"/admin/releases/{uuid}", status=400, credits="producer")
    assert snapshot(web_data_dir) == before
    await admin.post(
        f"/admin/releases/{uuid}",
        title="Three (Remastered)",
        kind="album",
        credits="mastering: Bo",
        upc="012345678905",
        **{f"number-{a}": "3", f"number-{c}": "1"},
    )
    record = await catalog.release(release["id"])
    assert (record.revision, record.title, record.kind) == (2, "Three (Remastered)", "album")
    assert record.document["credits"] == [{"role": "mastering", "name": "Bo"}]
    assert [t["id"].removeprefix("urn:uuid:") for t in record.document["tracks"]] == [c, b, a]
    # an unchanged form publishes nothing; emptying credits removes them
    await admin.post(
        f"/admin/releases/{uuid}", title="Three (Remastered)", credits="mastering: Bo\r\n"
    )
    assert (await catalog.release(release["id"])).revision == 2
    await admin.post(f"/admin/releases/{uuid}", credits="")
    assert "credits" not in (await catalog.release(release["id"])).document
    await admin.post(f"/admin/releases/{uuid}/withdraw")
    assert await catalog.releases() == [] and await catalog.tracks() == []
    await admin.get(f"/admin/releases/{uuid}", status=410)


def test_unpacking_keeps_inside_the_folder_and_the_limit(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.mkdir()
    archive = upload / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../../escape.wav", b"RIFF")
        bundle.writestr("/abs/olute.wav", b"RIFF")
        bundle.writestr(".hidden/x.wav", b"RIFF")
        bundle.writestr("__MACOSX/._a.wav", b"RIFF")
    folder = unpack_zip(archive, 1 << 20)
    found = sorted(p.relative_to(upload).as_posix() for p in upload.rglob("*") if p.is_file())
    assert found == ["evil.zip", "evil/abs/olute.wav", "evil/escape.wav"]
    assert folder == upload / "evil"
    big = tmp_path / "big" / "big.zip"
    big.parent.mkdir()
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("a.wav", bytes(2 << 20))
    with pytest.raises(UsageError, match="larger than the limit"):
        unpack_zip(big, 1 << 20)
    twice = tmp_path / "twice" / "twice.zip"
    twice.parent.mkdir()
    with zipfile.ZipFile(twice, "w") as bundle:
        bundle.writestr("a.wav", b"1")
        bundle.writestr("./a.wav", b"2")
    with pytest.raises(UsageError, match="twice"):
        unpack_zip(twice, 1 << 20)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "junk.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UsageError, match="not a zip archive"):
        unpack_zip(tmp_path / "junk" / "junk.zip", 1 << 20)


def test_credits_from_a_form() -> None:
    assert parse_credits("producer: Ada\n\n mixing = Bo \n") == (
        parse_credits("producer:Ada")[0],
        parse_credits("mixing=Bo")[0],
    )
    with pytest.raises(UsageError, match="line 2"):
        parse_credits("producer: Ada\nBo")
