"""Output-stride control shared by the backbones built layer by layer."""


class Strider:
    """Tracks the stride and the dilation that replaces it past the output stride.

    Each strided convolution asks `step(stride)`; once the accumulated stride
    would pass `output_stride`, the convolution runs at stride 1 and every
    later one is dilated by the strides it skipped (atrous convolution).
    """

    def __init__(self, output_stride):
        self.output_stride, self.stride, self.dilation = output_stride, 1, 1

    def step(self, stride):
        """Returns (strides, dilation_rate) for a conv asking for `stride`."""
        dilation = self.dilation
        if stride > 1 and self.stride * stride > self.output_stride:
            self.dilation *= stride
            return 1, dilation
        self.stride *= stride
        return stride, dilation
