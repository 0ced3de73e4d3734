"""The runtime stages (ASR noise, NLU, context, entity resolution, execution) and the runtime composing them."""
