"""Who may change styles, and how user-given style names become safe ids."""

import pytest

from clipmorph.errors import BadInput
from clipmorph.serving import access


def test_the_admin_token_is_required_when_set():
    access.require_admin({"authorization": "Bearer s3cret"}, "s3cret")
    for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": "s3cret"}):
        with pytest.raises(BadInput) as error:
            access.require_admin(headers, "s3cret")
        assert error.value.reason == "forbidden"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("My Style!", "my-style"), ("Café  Noir", "cafe-noir"), ("van_gogh 2", "van_gogh-2"), ("  Z  ", "z")],
)
def test_names_become_safe_ids(name, expected):
    style_id, display = access.style_id_from_name(name)
    assert style_id == expected and display == name.strip()


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "x" * 61, "", " !! ", "tab\there"])
def test_bad_names_are_refused(name):
    with pytest.raises(BadInput):
        access.style_id_from_name(name)


def test_store_changes_bump_the_generation_and_catalogue_styles_are_protected(stored_styles):
    from clipmorph.styles import index, store
    from clipmorph.styles.library import Style

    before = index.styles_generation()
    rand = stored_styles.styles["rand-0"]
    meta = {"user_made": True, "display_name": "mine", "x": None}
    made = Style("user-made", rand.backbone, rand.params, meta, thumbnail=b"\xff\xd8fake")
    assert store.save_style(made).created
    assert index.styles_generation() != before
    assert index.thumbnail_path("user-made").read_bytes() == b"\xff\xd8fake"
    with pytest.raises(BadInput, match="catalogue"):
        index.delete_style("rand-0", user_made_only=True)
    middle = index.styles_generation()
    assert index.delete_style("user-made", user_made_only=True)
    assert index.styles_generation() != middle


def test_job_listing_ignores_the_training_lock_files(tmp_path):
    """Regression: a lock file in the jobs folder broke the second style job and the sweep."""
    from clipmorph.serving.jobs.store import JobStore
    from clipmorph.serving.jobs.style_queue import active_style_ids

    jobs = JobStore(tmp_path, ttl_seconds=0)
    (tmp_path / ".training-slot-0.lock").write_text("")
    job = jobs.create("style-1")
    job.write("running", kind="style", style="mine")
    assert active_style_ids(jobs) == {"mine"}
    job.write("succeeded")
    jobs.sweep()
    assert [p.name for p in tmp_path.iterdir()] == [".training-slot-0.lock"]
