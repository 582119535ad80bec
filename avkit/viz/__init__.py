"""Visualisations of what a video model looks at: Grad-CAM over space and time, class model images."""
from avkit.viz.class_visualization import ClassVisualization, save_class_visualization, visualize_class
from avkit.viz.gradcam import grad_cam, overlay_cam, write_cam_video

__all__ = ["grad_cam", "overlay_cam", "write_cam_video", "visualize_class", "save_class_visualization",
           "ClassVisualization"]
