"""edgeft: fine-tune, compress and run pretrained models on edge boxes."""
