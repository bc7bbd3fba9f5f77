"""File names npc derives from user input (images given to predict, the spec's name for a default run folder) stay
plain names inside the chosen folder and never collide within one call."""

from npc.runtime.tools.infer import OutputNames


def test_stems_are_plain_names_that_cannot_leave_the_folder_or_hide():
    names = OutputNames()
    assert names.stem("photos/cat.png") == "cat"
    assert names.stem("../../etc/passwd.png") == "passwd"
    assert names.stem("dir/.hidden.png") == "hidden"
    assert names.stem("a b$(rm -rf ~).jpg") == "a_b__rm_-rf___"
    assert names.stem("dir/...png") == "image"
    assert names.stem("snow\u2603man\n.png") == "snow_man_"


def test_images_sharing_a_stem_get_numbered_outputs():
    names = OutputNames()
    assert [names.stem(p) for p in ("a/img.png", "b/img.jpg", "c/IMG.png", "img-2.png")] == [
        "img",
        "img-2",
        "IMG-3",
        "img-2-2",
    ]
