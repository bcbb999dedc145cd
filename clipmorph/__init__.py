"""ClipMorph: feed-forward style transfer for photos and video."""

__version__ = "0.1.0"
