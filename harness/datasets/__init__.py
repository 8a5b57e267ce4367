"""Evaluation data: the synthetic shapes world and COCO-format caption sets."""

from harness.datasets.coco import CocoDataset, CocoItem, load_coco, write_coco
from harness.datasets.shapes import Sample, generate_shapes, shapes_sample
from harness.datasets.shift import SHIFTS, UNSHIFTED, Shift, parse_shapes_spec, parse_shift

__all__ = [
    "CocoDataset",
    "CocoItem",
    "load_coco",
    "write_coco",
    "Sample",
    "generate_shapes",
    "shapes_sample",
    "Shift",
    "SHIFTS",
    "UNSHIFTED",
    "parse_shift",
    "parse_shapes_spec",
]
