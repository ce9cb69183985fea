"""The pack's video nodes (ComfyUI V3): thin wrappers around :mod:`nodes.video_logic`.

``VideoTemporalSmooth`` takes the colorized frames of a clip (an IMAGE batch, e.g. from
``ExemplarColorize`` fed by core ``GetVideoComponents``) and removes the frame-to-frame flicker
of their colours; the luminance is never changed. Node id and input names are frozen.
"""

from __future__ import annotations

import comfy.model_management as mm
from comfy_api.latest import io

from . import logic, video_logic
from .common import CATEGORY, progress_relay, search_aliases


class VideoTemporalSmooth(io.ComfyNode):
    """Flow-guided temporal smoothing of the colours of a colorized clip."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        defaults = video_logic.temporal_defaults()
        return io.Schema(
            node_id="DeepExemplar_VideoTemporalSmooth",
            display_name="Exemplar Colorization: Video Temporal Smooth",
            category=CATEGORY,
            **search_aliases("VideoTemporalSmooth"),
            description="Removes colour flicker from colorized video frames by following the "
                        "motion (Bonneel et al. 2015); brightness is kept, scene cuts restart it.",
            inputs=[
                io.Image.Input("images", tooltip="Colorized frames of one clip in playing order "
                                                 "(an IMAGE batch, e.g. from Exemplar Colorize)."),
                io.Combo.Input(
                    "mode", options=["bonneel", "fast", "off"], default=defaults.mode,
                    tooltip="bonneel: solves for colours that follow the motion (best); fast: a "
                            "quicker low-pass correction for previews and CPU; off: unchanged."),
                io.Float.Input(
                    "lam", display_name="lambda", default=defaults.lam, min=0.001,
                    max=10.0, step=0.005,
                    tooltip="How strongly colours stick to the previous frame (bonneel mode), "
                            "for 480-line frames (scaled for other sizes). Larger = steadier "
                            "but more risk of smearing."),
                io.Combo.Input(
                    "flow_preset", options=["auto", "ultrafast", "fast", "medium"],
                    default=defaults.flow_preset,
                    tooltip="Optical-flow quality: medium follows motion best, ultrafast is "
                            "quickest; auto uses fast in fast mode and medium in bonneel mode."),
                io.Float.Input(
                    "scene_cut", default=defaults.scene_cut, min=0.0, max=1.0, step=0.01,
                    tooltip="A frame whose mean motion-match weight (0..1) falls below this "
                            "starts a new shot: nothing is carried across the cut. 0 disables "
                            "cut detection."),
            ],
            outputs=[
                io.Image.Output(display_name="images",
                                tooltip="Smoothed frames: same count, size and brightness."),
                io.String.Output(display_name="report",
                                 tooltip="Scene cuts found and the per-frame weights summary."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, images, mode, lam, flow_preset, scene_cut) -> io.NodeOutput:
        node = video_logic.NODE
        config = video_logic.make_temporal_config(mode, lam, flow_preset, scene_cut)
        with logic.core_errors(node):
            smoothed, report = video_logic.smooth_image_batch(
                images, config, device=mm.get_torch_device(),
                output_device=mm.intermediate_device(),
                report=progress_relay(cls.hidden.unique_id))
        return io.NodeOutput(smoothed, report.text())


NODES: list[type[io.ComfyNode]] = [VideoTemporalSmooth]
