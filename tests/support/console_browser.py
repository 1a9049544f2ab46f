"""Steps an operator takes in the console in a real browser, shared by the browser tests that walk them."""

import re

from playwright.sync_api import Page, expect


def edit_on_the_product_page(page: Page, url: str, priced: str, price: str, taken_off: str) -> str:
    """Open the product of `priced` from the SKU list, set its price, take `taken_off` off sale; its product id."""
    page.goto(url + "/admin/products")
    page.locator(f'#skus tr[data-sku="{priced}"] a[href^="/admin/products/"]').click()
    page.wait_for_url(re.compile(r".*/admin/products/\d+.*"))
    product_id = page.url.split("/admin/products/")[1].split("#")[0]

    card = page.locator(f"#sku-{priced}")
    card.locator('input[name="price"]').fill(price)
    card.locator("button.save").click()
    expect(page.locator(f'#sku-{priced} input[name="price"]')).to_have_value(price)

    off = page.locator(f"#sku-{taken_off}")
    off.locator('input[name="active"]').uncheck()
    off.locator("button.save").click()
    expect(page.locator(f"#sku-{taken_off} .sale.off")).to_be_visible()
    expect(page.locator(f'#sku-{taken_off} input[name="active"]')).not_to_be_checked()
    return product_id
