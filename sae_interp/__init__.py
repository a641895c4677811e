"""sae_interp: sparse autoencoders and the refusal direction, from training to browsable explanations.

Data flows one way: models -> sae -> cache -> loader -> explainers -> scorers -> explanations/.
Importing this package imports no model, no server client and no optional extra (vLLM).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
