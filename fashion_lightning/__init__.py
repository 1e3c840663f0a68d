"""Fashion-MNIST CNNs trained with PyTorch Lightning: a project template."""
