"""The export steps of end-to-end artifacts (``acfd-export --end2end``): one per variant,
each wrapping the raw ONNX file an earlier step wrote and verified, so every end-to-end
file contains exactly that network. The exporter verifies them like any artifact (the
registry's runner for the file, the verification layer's end-to-end rules)."""

from __future__ import annotations

from collections.abc import Callable

import onnx

from acfd_deploy.export.options import ExportOptions
from acfd_deploy.export.steps import Artifact, ExportContext, Step

VARIANT_SUFFIX = {"fp32": ".e2e.onnx", "fp16": ".e2e.fp16.onnx", "int8": ".e2e.int8.onnx"}


def e2e_scales(opts: ExportOptions) -> tuple[tuple[int, int], ...]:
    from acfd_deploy.pipeline.detector import MS_TEST_SCALES

    return MS_TEST_SCALES if opts.ms_test else (tuple(opts.e2e_imgsz),)  # type: ignore[return-value]


def describe_scales(scales: tuple[tuple[int, int], ...], keep_ratio: bool) -> str:
    return f"{' + '.join(f'{h}x{w}' for h, w in scales)}{' keep-ratio' if keep_ratio else ''}"


def build_end2end(precision: str) -> Callable[[ExportContext], list[Artifact]]:
    def build(ctx: ExportContext) -> list[Artifact]:
        from acfd_deploy.export.end2end import wrap_end_to_end
        from acfd_deploy.export.onnx_export import save_onnx
        from acfd_deploy.fileio import sha256_file
        from acfd_deploy.model.anchors import min_input_size

        raw = ctx.fp32_proto if precision == "fp32" else onnx.load(str(ctx.onnx_files[precision]))
        scales = e2e_scales(ctx.opts)
        model = wrap_end_to_end(
            raw,
            scales,
            keep_ratio=ctx.opts.keep_ratio,
            min_side=min_input_size(ctx.config),
            pixel_mean=tuple(ctx.config.pixel_mean),  # type: ignore[arg-type]
        )
        network = ctx.onnx_files[precision]
        for key, value in (("network_file", network.name), ("network_sha256", sha256_file(network))):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model, full_check=True)
        path = save_onnx(model, ctx.file(VARIANT_SUFFIX[precision]))
        ctx.onnx_files[f"e2e_{precision}"] = path
        details = {"end2end": True, "scales": [list(s) for s in scales], "keep_ratio": ctx.opts.keep_ratio}
        return [Artifact(f"ONNX e2e {precision}", "onnx", "onnxruntime", precision, [path], details=details)]

    return build


def build_end2end_openvino(precision: str) -> Callable[[ExportContext], list[Artifact]]:
    """OpenVINO IR of an end-to-end ONNX file (its metadata, ``graph: end2end`` included,
    in rt_info). The int8 one is ONNX Runtime's Q/DQ placement (``NAME.e2e.int8.onnx``)."""

    def build(ctx: ExportContext) -> list[Artifact]:
        from acfd_deploy.export.openvino import write_ir

        source = ctx.onnx_files[f"e2e_{precision}"]
        suffix = ".e2e.xml" if precision == "fp32" else f".e2e.{precision}.xml"
        files = list(write_ir(source, ctx.file(suffix)))
        return [Artifact(f"OpenVINO e2e {precision}", "openvino", "openvino", precision, files, details={"end2end": True})]

    return build


def end2end_steps(opts: ExportOptions) -> list[Step]:
    """The end-to-end steps after the raw ones (``--end2end``)."""
    if not opts.end2end:
        return []
    what = describe_scales(e2e_scales(opts), opts.keep_ratio)
    precisions = ["fp32"] + (["fp16"] if opts.fp16 else []) + (["int8"] if opts.int8 else [])
    steps = [Step(f"e2e_{p}", f"wrapping ONNX {p} end to end (uint8 image in, faces out; {what})", build_end2end(p)) for p in precisions]
    if opts.openvino:
        steps += [
            Step(f"e2e_openvino_{p}", f"writing OpenVINO IR of the e2e {p} graph", build_end2end_openvino(p))
            for p in precisions
            if p != "fp16"
        ]
    return steps
