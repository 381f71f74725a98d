"""Sample-quality metrics: the Fréchet distance (FID's statistic), the bundled-digits quality check, and the ADM
evaluator's metrics on Inception-v3 features (FID, Inception Score, k-NN precision/recall, reference batches)."""
from .digits import DigitsScorer
from .frechet import frechet_distance, gaussian_stats
from .inception import InceptionFeatures, find_weights
from .inception_score import inception_score
from .precision_recall import precision_recall
from .reference import Reference, complete_reference, load_batch, load_reference, save_reference

__all__ = ["DigitsScorer", "frechet_distance", "gaussian_stats", "InceptionFeatures", "find_weights",
           "inception_score", "precision_recall", "Reference", "complete_reference", "load_batch", "load_reference",
           "save_reference"]
