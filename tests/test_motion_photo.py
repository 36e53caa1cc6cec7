"""A phone's motion photo (a JPEG, then the MP4 its XMP names) restored: the video kept after the restored picture."""
from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from clrface_video.config import RestoreConfig
from clrface_video.photos import restore_folder
from clrface_video.pipeline import restore_image

BASELINE = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu")
# Google's Motion Photo format 1.0, as a Pixel writes it: a Container:Directory whose last item is the video
MOTION_XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              '<rdf:Description rdf:about="" xmlns:GCamera="http://ns.google.com/photos/1.0/camera/"'
              ' xmlns:Container="http://ns.google.com/photos/1.0/container/"'
              ' xmlns:Item="http://ns.google.com/photos/1.0/container/item/"'
              ' GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1"><Container:Directory><rdf:Seq>'
              '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary"'
              ' Item:Length="0" Item:Padding="0"/></rdf:li>'
              '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto"'
              ' Item:Length="{}" Item:Padding="0"/></rdf:li></rdf:Seq></Container:Directory></rdf:Description>'
              '</rdf:RDF></x:xmpmeta>')
# the older one (MicroVideo): the video's start given as its distance from the file's end
MICRO_XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
             '<rdf:Description rdf:about="" xmlns:GCamera="http://ns.google.com/photos/1.0/camera/"'
             ' GCamera:MicroVideo="1" GCamera:MicroVideoVersion="1" GCamera:MicroVideoOffset="{}"/>'
             '</rdf:RDF></x:xmpmeta>')


def clip() -> bytes:
    """A 5-frame 64 x 64 H.264 MP4, as the seconds a phone keeps around the photo."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for shade in range(0, 200, 40):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), shade, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return out.getvalue()


def motion_photo(path, astronaut, xmp: str, video: bytes):
    picture = io.BytesIO()
    Image.fromarray(astronaut).save(picture, "JPEG", quality=80, xmp=xmp.format(len(video)).encode())
    path.write_bytes(picture.getvalue() + video)
    return path


@pytest.mark.parametrize("xmp", [MOTION_XMP, MICRO_XMP], ids=["motion-photo", "micro-video"])
def test_a_motion_photos_video_is_kept_after_the_restored_picture(tmp_path, astronaut, xmp):
    """The restored copy was a still JPEG whose XMP still said a video of so many bytes ended the file: a phone's
    gallery then read the picture's own last bytes as that video. Its frames play from the copy as from the source,
    and the copy's XMP still names them."""
    video = clip()
    source = motion_photo(tmp_path / "PXL_20240101_MP.jpg", astronaut, xmp, video)
    restore_image(source, tmp_path / "out.jpg", BASELINE)
    written = (tmp_path / "out.jpg").read_bytes()
    assert written.endswith(video) and len(written) > len(video) + 10000
    with av.open(io.BytesIO(written[-len(video):])) as played:
        assert sum(1 for _ in played.decode(video=0)) == 5
    with Image.open(tmp_path / "out.jpg") as picture:
        restored = np.asarray(picture.convert("RGB"), np.float64)
        assert picture.size == (512, 512) and picture.info["xmp"] == xmp.format(len(video)).encode()
    assert np.abs(restored - np.asarray(Image.open(source).convert("RGB"), np.float64)).max() > 30  # a face restored


def test_a_motion_photo_written_in_another_format_or_missing_its_video_says_so(tmp_path, astronaut,
                                                                             warnings_logged):
    """-o photo.png has no place for the video; a copy that kept the XMP but lost the video (cut by a transfer
    tool) is restored as a still photo: each said in one line."""
    video = clip()
    (tmp_path / "album").mkdir()
    cut = motion_photo(tmp_path / "album" / "b.jpg", astronaut, MOTION_XMP, video)
    cut.write_bytes(cut.read_bytes()[:-len(video)])
    restore_image(motion_photo(tmp_path / "a.jpg", astronaut, MOTION_XMP, video), tmp_path / "a.png", BASELINE)
    restore_folder(tmp_path / "album", tmp_path / "restored", BASELINE)
    said = {record.getMessage() for record in warnings_logged.records}
    assert (f"a.png: written as PNG with its motion photo's video ({len(video)} bytes) left out, which a JPEG output "
            "keeps") in said
    assert ("b.jpg: its XMP marks it a motion photo, but no video was found where it says; the restored copy is a "
            "still photo") in said
