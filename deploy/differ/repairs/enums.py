"""placeholder"""
def apply(ctx, statements):
    return statements
