"""The wire contract shared by the gate and central: pass codec, topics, message models."""
