"""depthseg: joint foreground segmentation and depth estimation with DSResNet."""
