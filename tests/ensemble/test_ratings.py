"""ratings.csv: what the page exports and the ComfyUI route saves, read back by `learn` and by
`calibrate` (the same file), and matched to report rows by content hash, then by name."""

from __future__ import annotations

import hashlib

import pytest

from scoring.ensemble import ratings
from scoring.ensemble.calibrate import load_ratings
from scoring.ensemble.ratings import Rating, check, match, parse, read, scale_of, to_csv

SHA = hashlib.sha256(b"image").hexdigest()


def test_round_trip_and_calibrate_reads_the_same_file(tmp_path):
    rows = [Rating("桜, 夜.png", 4.0, SHA, ""), Rating('say "hi".png', 1.0, "", "reject"),
            Rating("sub/fav.webp", 5.0, "", "favourite")]
    text = to_csv(rows)
    assert text.splitlines()[0] == ",".join(ratings.HEADER)
    assert parse(text) == rows
    path = tmp_path / "ratings.csv"
    path.write_text(text, encoding="utf-8")
    assert read(path) == rows
    assert load_ratings(path) == {"桜, 夜.png": 4.0, 'say "hi".png': 1.0, "sub/fav.webp": 5.0}


def test_older_and_hand_written_files_read():
    text = "# my picks\nfile,rating,note\na.png,3,nice\n\nb.png , 2.5 \n"
    assert parse(text) == [Rating("a.png", 3.0), Rating("b.png", 2.5)]  # extra column ignored
    named = "file,rating,flag,sha256\nc.png,4,REJECT,\n"  # columns found by their names
    assert parse(named) == [Rating("c.png", 4.0, "", "reject")]
    assert parse("a.png,4\n") == [Rating("a.png", 4.0)]  # no header at all


@pytest.mark.parametrize(("text", "problem"), [
    ("a.png,4\nb.png,good\n", "ratings:2: rating 'good' is not a number"),
    ("file,rating\na.png,nan\n", "ratings:2: rating must be a finite number"),
    ("file,rating\na.png,1e400\n", "ratings:2: rating must be a finite number"),
    ("file,rating,sha256\na.png,3,xyz\n", "ratings:2: sha256 must be"),
    ("file,rating,sha256,flag\na.png,3,,love\n", "ratings:2: flag must be"),
    ("file,rating\na\x07.png,3\n", "ratings:2: file must be"),
    ("file,rating\nonly-a-name\n", "ratings:2: expected 'file,rating'"),
])
def test_bad_rows_name_the_line_and_field(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse(text)


def test_check_bounds_every_field():
    assert check(Rating("a.png", 3)) == Rating("a.png", 3)
    for bad in (Rating("", 3), Rating("x" * 2000, 3), Rating("a", True),
                Rating("a", float("inf")), Rating("a", 3, SHA.upper()), Rating("a", 3, "", "x")):
        with pytest.raises(ValueError):
            check(bad)


def test_scale_is_the_pages_unless_the_ratings_leave_it():
    assert scale_of([Rating("a", 2), Rating("b", 4)]) == (1.0, 5.0)
    assert scale_of([Rating("a", 0), Rating("b", 10)]) == (0.0, 10.0)


def test_match_by_hash_survives_a_rename_then_by_name():
    other = hashlib.sha256(b"other").hexdigest()
    rows = [("renamed.png", SHA, "A"), ("b.png", other, "B"), ("dir/c.jpg", "", "C"),
            ("d.png", "", "D")]
    got = match(rows, [Rating("original.png", 5, SHA), Rating("b.png", 2),
                       Rating("c", 3), Rating("d.png", 1), Rating("d.png", 4),
                       Rating("missing.png", 2)])
    assert sorted((item, r.rating) for r, item in got) == [("A", 5), ("B", 2), ("C", 3),
                                                          ("D", 4)]


def test_images_of_the_same_content_each_keep_their_rating():
    rows = [("night1.png", SHA, "A"), ("night2.png", SHA, "B")]  # the same black frame twice
    got = match(rows, [Rating("night2.png", 1, SHA), Rating("night1.png", 2, SHA)])
    assert sorted((item, r.rating) for r, item in got) == [("A", 2), ("B", 1)]
    renamed = match(rows, [Rating("x.png", 1, SHA), Rating("y.png", 2, SHA)])
    assert sorted((item, r.rating) for r, item in renamed) == [("A", 1), ("B", 2)]
