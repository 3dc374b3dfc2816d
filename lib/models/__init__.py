"""Sequential recommenders over item IDs and item content: SASRec and GPT-2 backbones."""
