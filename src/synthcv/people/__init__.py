"""People (issue #18): the pybullet_data humanoid skeleton driven by its motion-capture clips,
a smooth skinned body mesh with clothing regions, eyes that look at a target, and the labels
that follow from them (COCO keypoints, body parts, head pose, gaze).

Modules: ``skeleton`` (the URDF's joints, forward kinematics), ``motions`` (clips and static
poses), ``body`` (rest mesh per shape, skinning, part labels), ``head`` (face geometry, eyes,
gaze, head pose), ``keypoints`` (COCO's 17 keypoints), ``person`` (one posed, placed person).
Nothing here imports a renderer.
"""
