from kaquan.kit.errors import Conflict, DomainError, NotFound


class SkuNotFound(NotFound):
    code = "sku_not_found"

    def __init__(self, sku: int | str) -> None:
        super().__init__(f"no SKU {sku!r}", sku=sku)


class ProductNotFound(NotFound):
    code = "product_not_found"

    def __init__(self, product_id: int) -> None:
        super().__init__(f"no product {product_id}", product_id=product_id)


class SkuCodeTaken(Conflict):
    code = "sku_code_taken"

    def __init__(self, code: str) -> None:
        super().__init__(f"a SKU with code {code!r} exists already", sku_code=code)


class ImageNotAccepted(DomainError):
    """The upload is not a picture kaquan takes (not an image, a kind it does not read, or too small)."""

    status = 415
    code = "image_not_accepted"


class ImageTooLarge(DomainError):
    status = 413
    code = "image_too_large"


class ImageNotFound(NotFound):
    code = "image_not_found"

    def __init__(self, image_id: int) -> None:
        super().__init__(f"no image {image_id}", image_id=image_id)


class CategoryNotFound(NotFound):
    code = "category_not_found"

    def __init__(self, category_id: int) -> None:
        super().__init__(f"no category {category_id}", category_id=category_id)


class CategoryNameTaken(Conflict):
    code = "category_name_taken"

    def __init__(self, name: str) -> None:
        super().__init__(f"a category named {name!r} exists already", name=name)
