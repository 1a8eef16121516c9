"""Data analysis with SAE codes: document embeddings and what is done with them (Jiang et al., 2025)."""

from .clustering import (
    DEFAULT_AXIS_LATENTS,
    DEFAULT_MIN_COVERAGE,
    MIN_EXAMPLES,
    axis_features,
    axis_latents,
    axis_scores,
    cluster_along_axis,
    cluster_dense,
    concept_axis_latents,
    value_axis_latents,
)
from .correlations import cooccurrence, npmi_matrix, pair_rank, same_concept_mask, top_pairs
from .diffing import DIFF_BY, EPSILON, LatentDifference, diff_latents, document_frequency, firing, top_documents
from .embed import POOLINGS, DocumentEmbeddings, dense_embeddings, pool_tokens, sae_embeddings
from .labels import MIN_F1, MIN_PHI, LatentLabel, concept_labels, label_concept, token_labels, top_tokens
from .retrieval import (
    DEFAULT_QUERY_LATENTS,
    MIN_QUERY_EXAMPLES,
    dense_rank,
    document_scores,
    query_latents,
    query_scores,
    rank_documents,
)
from .selection import (
    BM25_B,
    BM25_K1,
    SELECTION_METHODS,
    bm25_scores,
    cosine_scores,
    generalized_jaccard,
    jaccard_scores,
    prototype,
    random_scores,
    select,
)
from .selection_study import selection_study

__all__ = ["POOLINGS", "DocumentEmbeddings", "dense_embeddings", "pool_tokens", "sae_embeddings"]
__all__ += ["DIFF_BY", "EPSILON", "LatentDifference", "diff_latents", "document_frequency", "firing", "top_documents"]
__all__ += ["MIN_F1", "MIN_PHI", "LatentLabel", "concept_labels", "label_concept", "token_labels", "top_tokens"]
__all__ += ["cooccurrence", "npmi_matrix", "pair_rank", "same_concept_mask", "top_pairs"]
__all__ += ["BM25_B", "BM25_K1", "SELECTION_METHODS", "bm25_scores", "cosine_scores", "generalized_jaccard",
            "jaccard_scores", "prototype", "random_scores", "select", "selection_study"]
__all__ += ["DEFAULT_AXIS_LATENTS", "DEFAULT_MIN_COVERAGE", "MIN_EXAMPLES", "axis_features", "axis_latents",
            "axis_scores", "cluster_along_axis", "cluster_dense", "concept_axis_latents", "value_axis_latents"]
__all__ += ["DEFAULT_QUERY_LATENTS", "MIN_QUERY_EXAMPLES", "dense_rank", "document_scores", "query_latents",
            "query_scores", "rank_documents"]
