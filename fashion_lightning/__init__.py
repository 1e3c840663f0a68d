"""A PyTorch Lightning template for image classification, born from a course's CNN notes on Fashion-MNIST."""
