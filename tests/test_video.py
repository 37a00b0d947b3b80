"""Video upscaling: frames, size, frame rate, timestamps and audio survive; no partial outputs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from typer.testing import CliRunner  # noqa: E402

from edgesr.cli import app  # noqa: E402
from edgesr.engine import Upscaler  # noqa: E402
from edgesr.imaging import luma_to_model, model_to_luma, write_image  # noqa: E402
from edgesr.video import _plane, upscale_video  # noqa: E402

FRAMES, WIDTH, HEIGHT, FPS, RATE = 12, 48, 32, 10, 16000


def video_codec() -> str:
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except Exception:  # noqa: BLE001 - an FFmpeg build without x264
        return "mpeg4"


def make_clip(path: Path, audio_codec: str = "aac") -> Path:
    """FRAMES frames of moving stripes at FPS fps, plus a 440 Hz tone as long as the video."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(video_codec(), rate=Fraction(FPS))
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = out.add_stream(audio_codec, rate=RATE)
        x = np.arange(WIDTH)
        for i in range(FRAMES):
            rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            rgb[..., 0] = 20 * i
            rgb[..., 1] = (128 + 100 * np.sin((x + 3 * i) / 3.0)).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE * FRAMES // FPS) / RATE)
        samples = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="flt", layout="mono")
        samples.sample_rate, samples.pts = RATE, 0
        out.mux(audio.encode(samples))
        out.mux(audio.encode(None))
        out.mux(video.encode(None))
    return path


def describe(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = list(container.decode(video))
        audio = [(s.codec_context.name, s.codec_context.sample_rate) for s in container.streams.audio]
        return {"frames": len(frames), "size": (frames[0].width, frames[0].height),
                "fps": video.average_rate, "times": [round(float(f.time), 4) for f in frames], "audio": audio}


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "clip.mp4")


def test_video_keeps_frame_count_rate_timestamps_and_audio(clip, tmp_path):
    target = tmp_path / "clip_x3.mp4"
    report = upscale_video(Upscaler("eSR-TM_s3_K5_C3", pretrained=False), clip, target)
    before, after = describe(clip), describe(target)
    assert after["frames"] == before["frames"] == report.frames == FRAMES
    assert after["size"] == (3 * WIDTH, 3 * HEIGHT) == report.size
    assert after["fps"] == FPS
    assert after["times"] == before["times"]
    assert after["audio"] == before["audio"] == [("aac", RATE)] and report.audio == "copied"


def test_video_luma_is_the_model_output(clip, tmp_path):
    torch.manual_seed(0)
    upscaler, bicubic = Upscaler("eSR-MAX_s2_K5_C4", pretrained=False), Upscaler("Bicubic_s2")
    target = upscale_video(upscaler, clip, tmp_path / "out.mkv").target
    with av.open(str(clip)) as source, av.open(str(target)) as result:
        for before, after in zip(source.decode(video=0), result.decode(video=0)):
            y = torch.from_numpy(luma_to_model(_plane(before, 0).astype(np.float32)))[None, None]
            got = _plane(after, 0)
            model_error = np.abs(got - model_to_luma(upscaler.run_model(y))[0, 0].numpy()).mean()
            bicubic_error = np.abs(got - model_to_luma(bicubic.run_model(y))[0, 0].numpy()).mean()
            # within coding error of this model's output (CRF 18: ~2 levels on this noisy
            # random-init output), and far from what plain bicubic would give
            assert model_error < 3.0 and model_error < bicubic_error / 3


def test_audio_the_container_cannot_hold_is_reencoded(tmp_path):
    source = make_clip(tmp_path / "pcm.mkv", audio_codec="pcm_s16le")
    report = upscale_video(Upscaler("Bicubic_s2"), source, tmp_path / "out.mp4")
    assert report.audio == "re-encoded pcm_s16le to aac"
    assert describe(tmp_path / "out.mp4")["audio"] == [("aac", RATE)]


def test_interrupted_video_leaves_no_output_file(clip, tmp_path):
    def interrupt(done: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(Upscaler("Bicubic_s2"), clip, tmp_path / "out.mp4",
                      progress=lambda event: interrupt(event.done) if event.kind == "advance" else None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no output, no temp file


def test_cli_upscales_a_video_file(clip, tmp_path):
    target = tmp_path / "out.mp4"
    result = CliRunner().invoke(app, ["upscale", str(clip), "-o", str(target), "--model", "eSR-MAX_s2_K3_C2"])
    assert result.exit_code == 0, result.output
    assert describe(target)["frames"] == FRAMES and describe(target)["size"] == (2 * WIDTH, 2 * HEIGHT)


def test_cli_upscales_a_folder_of_frames_as_an_image_sequence(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(frames / f"frame_{i:04d}.png", rng.integers(0, 256, size=(21, 17, 3), dtype=np.uint8))
    result = CliRunner().invoke(app, ["upscale", str(frames), "-o", str(tmp_path / "up"), "--tile", "0"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "up").iterdir()) == [f"frame_{i:04d}.png" for i in range(3)]


def _random_frame(width: int, height: int, seed: int = 0):
    frame = av.VideoFrame(width, height, "yuv420p")
    rng = np.random.default_rng(seed)
    for index in range(3):
        plane = _plane(frame, index)
        plane[...] = rng.integers(16, 236, size=plane.shape, dtype=np.uint8)
    frame.pts, frame.time_base = 0, Fraction(1, 25)
    return frame


@pytest.mark.parametrize("size", [(48, 32), (47, 33)])
def test_frames_through_the_kernel_equal_the_torch_path(size):
    from edgesr.video import FrameUpscaler

    frame = _random_frame(*size)
    from edgesr.models import create_model

    model = create_model("eSR-TM_s3_K5_C3")
    fused = FrameUpscaler(Upscaler(model, backend="auto"))(frame)
    reference = FrameUpscaler(Upscaler(model, backend="torch"))(frame)
    assert (fused.width, fused.height) == (3 * size[0] // 2 * 2, 3 * size[1] // 2 * 2)
    for index in range(3):
        a, b = _plane(fused, index).astype(int), _plane(reference, index).astype(int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1


def test_cli_video_encoder_options_and_summary(clip, tmp_path):
    target = tmp_path / "out.mp4"
    result = CliRunner().invoke(app, ["upscale", str(clip), "-o", str(target), "-m", "Bicubic_s2",
                                      "--codec", "mpeg4"])
    assert result.exit_code == 0, result.output
    with av.open(str(target)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert f"1 video ({FRAMES} frames)" in result.output
    if video_codec() == "libx264":  # a higher CRF gives a smaller file than the default 18
        sizes = {}
        for crf in ("18", "45"):
            out = tmp_path / f"crf{crf}.mp4"
            result = CliRunner().invoke(app, ["upscale", str(clip), "-o", str(out), "-m", "Bicubic_s2",
                                              "--crf", crf, "--preset", "ultrafast"])
            assert result.exit_code == 0, result.output
            sizes[crf] = out.stat().st_size
        assert sizes["45"] < sizes["18"]
