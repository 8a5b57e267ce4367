"""Drift detection: reference vs current over confidence, embeddings, caption text and image
statistics. One module per detector family, all on the ``Detector`` base class."""

from harness.drift.base import DETECTORS, Detector, DriftResult, Score, VectorDetector
from harness.drift.classifier import ClassifierDrift
from harness.drift.features import DriftFeatures, features_from_records, load_features
from harness.drift.image import IMAGE_STATS, ImageStatsDrift, folder_statistics, image_statistics
from harness.drift.ks import KSDrift
from harness.drift.mmd import MMDDrift
from harness.drift.psi import PSIDrift
from harness.drift.report import render_html, render_markdown, write_report
from harness.drift.suite import DriftReport, DriftSuite
from harness.drift.text import CaptionLengthDrift, SentenceEmbeddingDrift, TokenDrift, sentence_encoder_available
from harness.drift.wasserstein import WassersteinDrift

__all__ = [
    "Detector",
    "VectorDetector",
    "DETECTORS",
    "Score",
    "DriftResult",
    "KSDrift",
    "PSIDrift",
    "WassersteinDrift",
    "MMDDrift",
    "ClassifierDrift",
    "CaptionLengthDrift",
    "TokenDrift",
    "SentenceEmbeddingDrift",
    "sentence_encoder_available",
    "ImageStatsDrift",
    "IMAGE_STATS",
    "image_statistics",
    "folder_statistics",
    "DriftFeatures",
    "features_from_records",
    "load_features",
    "DriftSuite",
    "DriftReport",
    "write_report",
    "render_html",
    "render_markdown",
]
