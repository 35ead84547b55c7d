"""Personalising a pretrained causal language model: LoRA fine-tuning, grounding, cached decoding."""
