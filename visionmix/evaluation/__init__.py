"""Sample-quality metrics: the Fréchet distance (FID's statistic) and the bundled-digits quality check."""
from .digits import DigitsScorer
from .frechet import frechet_distance, gaussian_stats

__all__ = ["DigitsScorer", "frechet_distance", "gaussian_stats"]
